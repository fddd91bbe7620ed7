"""Models built on neuromem hardware: memristive RBMs and DBNs, spiking networks."""

from .dbn import MemristiveDBN
from .rbm import MemristiveRBM

__all__ = ["MemristiveDBN", "MemristiveRBM"]
