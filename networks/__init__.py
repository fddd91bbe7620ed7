"""Models built on neuromem hardware: memristive RBMs and DBNs, spiking networks."""

from .dbn import MemristiveDBN
from .diehl_cook_engine import DiehlCookEngine
from .rbm import MemristiveRBM

__all__ = ["DiehlCookEngine", "MemristiveDBN", "MemristiveRBM"]
from .ternary_mlp import TernaryMLP  # noqa: E402

__all__ += ["TernaryMLP"]
