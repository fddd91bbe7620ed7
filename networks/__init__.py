"""Models built on neuromem hardware: memristive RBMs and DBNs, spiking networks."""

from .dbn import MemristiveDBN
from .diehl_cook_engine import DiehlCookEngine
from .rbm import MemristiveRBM

__all__ = ["DiehlCookEngine", "MemristiveDBN", "MemristiveRBM"]
from .mlp import CrossbarMLP  # noqa: E402

__all__ += ["CrossbarMLP"]
from .ternary_mlp import TernaryMLP  # noqa: E402

__all__ += ["TernaryMLP"]
from .ternary_cnn import TernaryCNN  # noqa: E402

__all__ += ["TernaryCNN"]
