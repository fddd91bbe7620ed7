"""Runnable studies built on neuromem and networks (``neuromem dbn|stdp|snn``).

Each module has a ``main(argv)`` and can also be run as a script.
"""
