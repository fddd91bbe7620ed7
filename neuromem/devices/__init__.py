"""Device families. Each is a frozen dataclass of parameters plus Numba kernels."""
from .base import Device, device_classes, get_device
from .ideal import Ideal
from .yflash import YFlash
from .mtj import MTJ
from .pcm import PCM
from .softbounds import SoftBounds
from .vteam import VTEAM
from .measured import Measured

__all__ = ["Device", "device_classes", "get_device", "Ideal", "YFlash", "SoftBounds", "VTEAM", "PCM", "MTJ", "Measured"]
