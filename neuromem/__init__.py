"""neuromem: simulated memristive crossbars for on-device learning.

The hardware only: device physics (:mod:`neuromem.devices`), the passive 1R
:class:`Crossbar`, the periphery (stochastic neurons, digital counters) and the energy
ledger. Models built on it live in the separate ``networks`` package.
"""

from . import devices
from .crossbar import Crossbar, ProgramResult
from .devices import Device, get_device
from .converters import ADC, DAC, ConverterChain, SampleHold, ShiftAdd
from .energy import EnergyLedger, energy_breakdown
from .periphery import ComparatorNeuron, DigitalCounter, PBitNeuron, SoftmaxWTA

__version__ = "0.1.0"

__all__ = [
    "Crossbar", "ProgramResult", "Device", "get_device", "devices", "EnergyLedger",
    "ComparatorNeuron", "PBitNeuron", "SoftmaxWTA", "DigitalCounter", "__version__",
    "ADC", "DAC", "SampleHold", "ShiftAdd", "ConverterChain", "energy_breakdown",
]
