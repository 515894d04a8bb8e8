"""The model behind ``pairforge serve``: a run folder answering the page's requests.

:class:`RunModel` is where the server meets predict's machinery: the run is loaded and checked
by the same code as ``pairforge predict`` (same errors), A images go through the same
:class:`~pairforge.trainer.inference.Predictor` and, for photos, the same dataset recipe as
``predict --from-photos``; so a request gives the same output as ``pairforge predict`` for the
same input and seed. It implements :class:`pairforge.serve.server.ImageModel`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pairforge import kinds
from pairforge.descriptions import stage_config
from pairforge.errors import PairforgeError, SampleError
from pairforge.imageio import DEFAULT_MAX_PIXELS
from pairforge.trainer.checkpoint import resolve_checkpoint
from pairforge.trainer.inference import (
    InferenceConfig,
    Predictor,
    describe_expected_input,
    load_checked_generator,
)

if TYPE_CHECKING:
    from pairforge.serve.server import Job

logger = logging.getLogger(__name__)

PhotoStage = Callable[[dict[str, Any]], Any]
"""Run config -> the stage making A from a photo (raises PairforgeError when the run has none)."""


class RunModel:
    """A run folder as the server's model (see :class:`pairforge.serve.server.ImageModel`).

    Args:
        run: run folder or checkpoints/step-* folder.
        device: ``cpu``, ``cuda`` or ``cuda:N`` (already resolved).
        dropout: test-time dropout (the paper's noise); each request's seed draws it.
        ema: use the EMA weights when the run kept them.
        batch_size: images per forward pass (requests without dropout share passes).
        scale: predict's ``--scale``.
        max_pixels: predict's ``--max-pixels``: an upload the network would process at more
            pixels than this (after scaling) is refused, by the rule predict applies.
        photo_stage: builds the stage that makes A from a photo out of the run's config (the
            dataset recipe, as ``predict --from-photos``: the command passes the pipelines'
            ``run_photo_stage`` bound to its --hed-weights and device); it raises PairforgeError when the run
            cannot make A from a photo. ``None``: photo uploads are refused.

    Raises:
        CheckpointError: the run fails predict's checkpoint checks (same message).
    """

    def __init__(self, run: str | Path, device: str = "cpu", dropout: bool = True, ema: bool = True,
                 batch_size: int = 4, scale: str = "train", photo_stage: PhotoStage | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.generator, self.run_config = load_checked_generator(run, device=device, ema=ema)
        self.checkpoint = resolve_checkpoint(run)
        self.dropout = dropout
        self.device = device
        self._config = InferenceConfig(dropout=dropout, seed=0, batch_size=batch_size, device=device, scale=scale,
                                       max_pixels=max_pixels)
        # one test-time network for every request: only the dropout seed changes between them
        self._predictor_for_seeds = Predictor(self.generator, self.run_config, self._config)
        self.encoding = self._predictor_for_seeds.encoding
        self.stage: Any = None
        self.photo_error: str | None = "this server was started without a photo recipe"
        if photo_stage is not None:
            try:
                self.stage, self.photo_error = photo_stage(self.run_config), None
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
        predictor = self._predictor_for_seeds
        predictor.config = dataclasses.replace(self._config, seed=seed if self.dropout else 0)
        return predictor

    def info(self) -> dict[str, Any]:
        dataset = self.run_config["dataset"]
        model = self.run_config["model"]
        size = int(model["crop_size"])
        stage = stage_config(dataset.get("source"))
        recipe = None
        if self.stage is not None:
            detector = {"hed": "HED", "canny": "Canny"}.get(str(stage.get("detector")), str(stage.get("detector")))
            kind = kinds.of(self.encoding.kind)
            recipe = f"{detector} edges" if kind.edge_map else "grayscale" if kind.lightness else kind.name
            if kinds.of(self.encoding.kind).lightness and stage.get("space"):
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
