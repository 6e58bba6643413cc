"""internet: InterNet (Moon et al., ECCV 2020) for 3D interacting-hand pose estimation from a single RGB image."""

from internet.config import Config, ConfigError

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "__version__"]
