"""``python -m neuromem``: the same as the ``neuromem`` console script."""
from .cli import main

raise SystemExit(main())
