"""Device families. Each is a frozen dataclass of parameters plus Numba kernels."""
from .base import Device
from .ideal import Ideal

__all__ = ["Device", "Ideal"]
