"""Serving a trained model (``pairforge serve``): a feature package above the core and the trainer.

:mod:`~pairforge.serve.server` is the aiohttp page server and its HTTP API (it knows
nothing about torch); :mod:`~pairforge.serve.model` is :class:`RunModel`, a run folder
answering the server's requests with predict's machinery from the trainer. The page
itself is ``static/``. Never imported by the core, the pipelines or the trainer.
"""

from pairforge.serve.server import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    BackgroundServer,
    ImageModel,
    Job,
    PageServer,
    ServeConfig,
    exposure_warning,
    serve_forever,
)

__all__ = [
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_PIXELS",
    "BackgroundServer",
    "ImageModel",
    "Job",
    "PageServer",
    "ServeConfig",
    "exposure_warning",
    "serve_forever",
]
