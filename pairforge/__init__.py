"""pairforge: paired image datasets and pix2pix training, from photos to a served model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pairforge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
