"""`pairforge serve`: the HTTP API against a real server on 127.0.0.1 (random free port), as a client sees it."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.commands.serve import MAX_UPLOAD_PIXELS as CLI_MAX_PIXELS
from pairforge.commands.serve import load_run_model
from pairforge.errors import PairforgeError
from pairforge.serve import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    BackgroundServer,
    Job,
    PageServer,
    ServeConfig,
    exposure_warning,
)
from pairforge.serve.model import RunModel
from pairforge.trainer.loop import train
from tests.trainer.conftest import make_tiny_config, write_shards

SIZE = 64
ROOT = Path(__file__).resolve().parents[2]


# ---- an HTTP client, as a user's script would be ----------------------------------------------


def multipart(fields: dict[str, bytes | str]) -> tuple[bytes, str]:
    """Encode form fields (bytes values as files) as multipart/form-data."""
    boundary = f"----pairforge{uuid.uuid4().hex}"
    body = io.BytesIO()
    for name, value in fields.items():
        body.write(f"--{boundary}\r\n".encode())
        if isinstance(value, bytes):
            body.write(f'Content-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'.encode())
            body.write(b"Content-Type: application/octet-stream\r\n\r\n" + value + b"\r\n")
        else:
            body.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


def request(url: str, data: bytes | None = None, content_type: str | None = None,
            method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(url: str, endpoint: str = "api/predict", **fields: bytes | str) -> tuple[int, dict[str, str], bytes]:
    body, content_type = multipart(fields)
    return request(url + endpoint, body, content_type)


def png(image: np.ndarray) -> bytes:
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", bgr)[1].tobytes()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, data[:200]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    from tests.conftest import sample_photos

    return sample_photos()


@pytest.fixture(scope="module")
def run_dir(tiny_edges_run: Path) -> Path:
    """A tiny edges run whose dataset recorded its Canny recipe (so photos can become A)."""
    return tiny_edges_run


@pytest.fixture(scope="module")
def model(run_dir: Path) -> RunModel:
    return load_run_model(str(run_dir), device="cpu")


@pytest.fixture(scope="module")
def url(model: RunModel) -> Iterator[str]:
    with BackgroundServer(PageServer(model, ServeConfig(host="127.0.0.1", port=0))) as address:
        yield address


@pytest.fixture(scope="module")
def edge_images(photos: list[np.ndarray]) -> list[np.ndarray]:
    """Five A images (black edges on white), 64x64 and one 80x48 (any size works)."""
    images = []
    for index, (photo, (height, width)) in enumerate(zip(photos + photos[:1], [(SIZE, SIZE)] * 4 + [(48, 80)],
                                                         strict=True)):
        gray = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), (width, height), interpolation=cv2.INTER_AREA)
        images.append(255 - cv2.Canny(np.roll(gray, 5 * index, axis=0), 60, 120))
    return images


def cli_predict(run_dir: Path, inputs: Path, output: Path, *options: str) -> None:
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(inputs), "-o", str(output), "--device", "cpu",
                                      *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output


# ---- the page and /api/info ---------------------------------------------------------------------


def test_info_describes_the_run(url: str, run_dir: Path) -> None:
    status, headers, body = request(url + "api/info")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    info = json.loads(body)
    assert info["run"] == run_dir.name
    assert (info["kind"], info["channels"], info["size"], info["palette"]) == ("edges", 1, [SIZE, SIZE], None)
    assert info["from_photos"] is True and info["recipe"] == "Canny edges"
    assert info["dropout"] is True
    assert (info["max_upload_bytes"], info["max_pixels"]) == (20 * 1024 * 1024, 20_000_000)
    assert CLI_MAX_PIXELS == MAX_UPLOAD_PIXELS  # the CLI's default mirrors the server's limit


def test_labels_run_info_has_palette(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="labels", count=4, val=1, shards=1)
    run = train(make_tiny_config(shards, tmp_path / "runs", steps=1)).run_dir
    info = load_run_model(str(run), device="cpu").info()
    assert info["kind"] == "labels" and info["channels"] == 3
    assert [c["name"] for c in info["palette"]["classes"]] == ["sky", "cat", "grass"]
    assert info["palette"]["classes"][1]["color"] == [220, 20, 60]
    assert info["from_photos"] is False and "cannot build A from a photo" in info["from_photos_note"]


def test_page_is_served_offline(url: str) -> None:
    status, headers, page = request(url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<canvas" in page and b"/static/app.js" in page and b"/static/style.css" in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, body = request(url + "static/" + name)
        assert status == 200 and headers["Content-Type"].startswith(kind) and len(body) > 1000
    for text in (page, request(url + "static/app.js")[2], request(url + "static/style.css")[2]):
        assert b"http://" not in text and b"https://" not in text  # nothing from a CDN
    status, _, body = request(url + "static/..%2Fserve.py")
    assert status == 404 and "error" in json.loads(body)


def test_static_files_ship_in_the_wheel(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="68", reason="building the wheel offline needs setuptools>=68")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("pairforge", "pipelines", "trainer", "data_cards"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "dist").glob("pairforge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"pairforge/serve/static/{p.name}" for p in (ROOT / "pairforge" / "serve" / "static").iterdir()}
    assert shipped == {f"pairforge/serve/static/{name}" for name in ("index.html", "app.js", "style.css")}
    assert shipped <= names, sorted(shipped - names)


# ---- predictions: the same as `pairforge predict` ------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_predict_equals_cli_predict(url: str, run_dir: Path, edge_images: list[np.ndarray], tmp_path: Path,
                                    seed: int) -> None:
    image = edge_images[4]  # 80x48: padded to the model's multiple and cropped back, as predict does
    (tmp_path / "in.png").write_bytes(png(image))
    cli_predict(run_dir, tmp_path / "in.png", tmp_path / "out", "--seed", str(seed))
    expected = read_rgb(tmp_path / "out" / "in.png")
    status, headers, body = post(url, image=png(image), seed=str(seed))
    assert status == 200 and headers["Content-Type"] == "image/png", body[:300]
    served = decode(body)
    assert served.shape == expected.shape == (48, 80, 3)
    np.testing.assert_array_equal(served, expected)


def test_seed_changes_the_dropout_noise(url: str, edge_images: list[np.ndarray]) -> None:
    outputs = [decode(post(url, image=png(edge_images[0]), seed=str(seed))[2]) for seed in (1, 1, 2)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.abs(outputs[0].astype(int) - outputs[2]).max() > 0


def test_photo_upload_equals_predict_from_photos(url: str, run_dir: Path, photos: list[np.ndarray],
                                                 tmp_path: Path) -> None:
    photo = cv2.resize(photos[2], (150, 100), interpolation=cv2.INTER_AREA)
    (tmp_path / "photo.jpg").write_bytes(cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes())
    cli_predict(run_dir, tmp_path / "photo.jpg", tmp_path / "out", "--from-photos", "--seed", "3")
    data = (tmp_path / "photo.jpg").read_bytes()
    status, _, body = post(url, image=data, from_photo="1", seed="3")
    assert status == 200, body[:300]
    np.testing.assert_array_equal(decode(body), read_rgb(tmp_path / "out" / "photo.png"))
    status, _, body = post(url, "api/prepare", image=data, from_photo="true")
    assert status == 200, body[:300]
    a = decode(body)
    assert a.shape == (100, 150)  # the dataset's recipe at the photo's own size (as predict --from-photos), 1-channel edges
    np.testing.assert_array_equal(a, cv2.imread(str(tmp_path / "out" / "inputs" / "photo.png"), cv2.IMREAD_UNCHANGED))


def test_twenty_concurrent_requests_are_all_answered_correctly(url: str, run_dir: Path, edge_images: list[np.ndarray],
                                                                tmp_path: Path) -> None:
    seeds = [0, 1, 2, 3]
    folder = tmp_path / "inputs"
    folder.mkdir()
    for index, image in enumerate(edge_images):
        (folder / f"{index}.png").write_bytes(png(image))
    expected = {}
    for seed in seeds:  # --batch-size 1: every image is predicted alone under the seed, like one request
        cli_predict(run_dir, folder, tmp_path / f"out{seed}", "--seed", str(seed), "--batch-size", "1")
        for index in range(len(edge_images)):
            expected[index, seed] = read_rgb(tmp_path / f"out{seed}" / f"{index}.png")
    work = [(index, seed) for seed in seeds for index in range(len(edge_images))]
    assert len(work) == 20
    barrier = threading.Barrier(len(work))

    def one(item: tuple[int, int]) -> tuple[int, bytes]:
        barrier.wait()
        status, _, body = post(url, image=png(edge_images[item[0]]), seed=str(item[1]))
        return status, body

    with ThreadPoolExecutor(len(work)) as pool:
        answers = list(pool.map(one, work))
    for item, (status, body) in zip(work, answers, strict=True):
        assert status == 200, body[:300]
        np.testing.assert_array_equal(decode(body), expected[item], err_msg=f"image {item[0]}, seed {item[1]}")


# ---- bad input: a 4xx JSON error, and the server keeps serving ------------------------------------


def png_bomb(side: int = 30_000) -> bytes:
    """A 1-bit PNG of side x side white pixels: ~110 KB on disk, 900 MP once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    row = b"\x00" + b"\xff" * (side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


BAD_INPUTS: dict[str, tuple[Any, int, str]] = {
    "not an image": (lambda: {"image": b"hello, this is not a picture"}, 400, "upload: not an image"),
    "empty image field": (lambda: {"image": b""}, 400, "empty upload"),
    "no image field": (lambda: {"seed": "3"}, 400, "no `image` field"),
    "truncated png": (lambda: {"image": png(np.zeros((64, 64), np.uint8) + 255)[:60]}, 400, "upload: "),
    "decompression bomb": (lambda: {"image": png_bomb()}, 413, "too large: 30000x30000"),
    "over 20 MP": (lambda: {"image": png(np.full((4001, 5000), 255, np.uint8))}, 413, "exceeds the limit of 20,000,000"),
    "over 20 MB (declared)": (lambda: {"image": os.urandom(MAX_UPLOAD_BYTES + 100_000)}, 413, "upload too large"),
    "over 20 MB (streamed)": (lambda: {"image": os.urandom(MAX_UPLOAD_BYTES + 1)}, 413, "over the limit"),
    "bad seed": (lambda: {"image": png(np.full((8, 8), 255, np.uint8)), "seed": "abc"}, 400, "seed='abc'"),
    "bad from_photo": (lambda: {"image": png(np.full((8, 8), 255, np.uint8)), "from_photo": "maybe"}, 400,
                       "from_photo='maybe'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_json_error_and_the_server_keeps_serving(url: str, edge_images: list[np.ndarray],
                                                                  case: str) -> None:
    fields, expected_status, expected_text = BAD_INPUTS[case]
    status, headers, body = post(url, **fields())
    assert status == expected_status, body[:300]
    assert headers["Content-Type"].startswith("application/json")
    assert expected_text in json.loads(body)["error"]
    status, _, body = post(url, image=png(edge_images[0]))
    assert status == 200 and decode(body).shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize(("data", "content_type", "status", "text"), [
    (None, None, 400, "empty request"),
    (b"", "multipart/form-data; boundary=xyz", 400, "empty request"),
    (b'{"image": "x"}', "application/json", 415, "multipart/form-data"),
    (b"--xyz\r\ngarbage", "multipart/form-data; boundary=xyz", 400, ""),
])
def test_malformed_requests(url: str, data: bytes | None, content_type: str | None, status: int, text: str) -> None:
    got, headers, body = request(url + "api/predict", data, content_type, method="POST")
    assert got == status, body[:300]
    assert text in json.loads(body)["error"]
    assert request(url + "api/info")[0] == 200


def test_wrong_channel_count_is_handled_as_predict_does(url: str, run_dir: Path, photos: list[np.ndarray],
                                                         tmp_path: Path) -> None:
    colour = cv2.resize(photos[0], (SIZE, SIZE))
    (tmp_path / "colour.png").write_bytes(png(colour))
    result = CliRunner().invoke(cli, ["predict", str(run_dir), str(tmp_path / "colour.png"), "-o",
                                      str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 1
    predict_reason = result.output.split(f"{tmp_path / 'colour.png'}: ", 1)[1].strip()
    status, _, body = post(url, image=png(colour))
    assert status == 422
    assert json.loads(body)["error"] == f"upload: {predict_reason}"
    # the same picture as a gray image is fine (predict takes any 1-channel-looking image)
    gray = np.repeat(cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert post(url, image=png(gray))[0] == 200


def test_uploads_are_never_written_to_disk(url: str, run_dir: Path, edge_images: list[np.ndarray],
                                           photos: list[np.ndarray], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    written: list[str] = []
    recording = threading.Event()

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if recording.is_set() and event == "open" and len(args) >= 2:
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                written.append(str(args[0]))

    sys.addaudithook(audit)
    recording.set()
    try:
        marker = f"pairforge-upload-{uuid.uuid4().hex}".encode()
        assert post(url, image=marker)[0] == 400
        assert post(url, image=png(edge_images[1]))[0] == 200
        photo = png(cv2.resize(photos[1], (100, 80)))
        assert post(url, image=photo, from_photo="1")[0] == 200
        assert post(url, "api/prepare", image=photo, from_photo="1")[0] == 200
        assert post(url, image=os.urandom(MAX_UPLOAD_BYTES + 1))[0] == 413
    finally:
        recording.clear()
    assert written == []
    assert list(tmp_path.iterdir()) == []
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before


# ---- the worker queue: batching, and an event loop that never waits on the model ------------------


class GatedModel:
    """A RunModel whose calls wait for a gate: lets a test fill the queue while the model is busy."""

    def __init__(self, inner: RunModel) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def run(self, jobs: Sequence[Job]) -> list[Any]:
        self.entered.set()
        assert self.gate.wait(60)
        self.calls.append(len(jobs))
        return self.inner.run(jobs)


def test_queue_batches_waiting_requests_and_the_loop_stays_responsive(model: RunModel,
                                                                      edge_images: list[np.ndarray]) -> None:
    gated = GatedModel(model)
    with BackgroundServer(PageServer(gated, ServeConfig(port=0, max_batch=4))) as address:
        with ThreadPoolExecutor(9) as pool:
            first = pool.submit(post, address, image=png(edge_images[0]), seed="5")
            assert gated.entered.wait(30)  # the model thread is now stuck inside run()
            rest = [pool.submit(post, address, image=png(edge_images[i % 5]), seed=str(i)) for i in range(1, 9)]
            deadline = time.monotonic() + 30
            while json.loads(request(address + "api/stats")[2])["queued"] < 8:
                assert time.monotonic() < deadline, "requests did not queue"
                time.sleep(0.02)
            started = time.perf_counter()
            status, _, body = request(address + "api/info")  # answered while inference is blocked
            assert status == 200 and json.loads(body)["kind"] == "edges"
            assert time.perf_counter() - started < 2.0
            assert not first.done()
            gated.gate.set()
            answers = [first.result(60), *(f.result(60) for f in rest)]
        stats = json.loads(request(address + "api/stats")[2])
    assert gated.calls == [1, 4, 4]
    assert stats["batches"] == 3 and stats["largest_batch"] == 4 and stats["requests"] == 9
    for i, (status, _, body) in enumerate(answers):
        assert status == 200
        [alone] = model.run([Job(np.repeat(edge_images[i % 5][..., None], 3, axis=2), seed=5 if i == 0 else i)])
        np.testing.assert_array_equal(decode(body), alone)


def test_without_dropout_batched_requests_equal_single_ones(run_dir: Path, edge_images: list[np.ndarray]) -> None:
    model = load_run_model(str(run_dir), device="cpu", dropout=False)
    jobs = [Job(np.repeat(image[..., None], 3, axis=2), seed=i) for i, image in enumerate(edge_images)]
    together = model.run(jobs)
    for job, output in zip(jobs, together, strict=True):
        [alone] = model.run([job])
        assert isinstance(output, np.ndarray)
        assert np.abs(output.astype(int) - alone).max() <= 1  # float rounding of batched convolutions at most


# ---- the command ---------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["no checkpoint", "damaged weights"])
def test_a_broken_run_refuses_to_start_with_predicts_error(run_dir: Path, tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "run"
    if damage == "no checkpoint":
        broken.mkdir()
    else:
        shutil.copytree(run_dir, broken)
        [weights] = broken.glob("checkpoints/*/generator.safetensors")
        weights.write_bytes(weights.read_bytes()[:100])
    (tmp_path / "in.png").write_bytes(png(np.full((8, 8), 255, np.uint8)))
    predicted = CliRunner().invoke(cli, ["predict", str(broken), str(tmp_path / "in.png"), "-o", str(tmp_path / "o")])
    served = CliRunner().invoke(cli, ["serve", str(broken), "--port", "0"])
    assert predicted.exit_code == served.exit_code == 1
    assert served.output.startswith("Error: ") and served.output == predicted.output
    assert "Traceback" not in served.output


def test_port_in_use_is_a_clear_error(url: str, run_dir: Path) -> None:
    port = url.rsplit(":", 1)[1].strip("/")
    result = CliRunner().invoke(cli, ["serve", str(run_dir), "--port", port, "--device", "cpu"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "--port" in result.output


def test_exposure_warning() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.org"):
        warning = exposure_warning(host)
        assert warning is not None and host in warning and "no authentication" in warning


def test_serve_command_prints_the_url_serves_and_stops(run_dir: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "pairforge", "serve", str(run_dir), "--port", "0",
                                "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith(f"serving {run_dir.name} (edges, 64x64, cpu) at http://127.0.0.1:"), (
            line + (process.stderr.read() if process.stderr else ""))
        address = line.split(" at ", 1)[1].split()[0]
        info = json.loads(request(address + "api/info")[2])
        assert info["run"] == run_dir.name
        assert request(address)[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert "warning" not in err  # 127.0.0.1: nothing exposed


def test_scale_native_equals_predict_scale_native(run_dir: Path, edge_images: list[np.ndarray],
                                                  tmp_path: Path) -> None:
    from pairforge.serve import Job

    image = edge_images[4]  # 80x48: the two scales differ (train resizes the shorter side to 64)
    (tmp_path / "in.png").write_bytes(png(image))
    outputs = {}
    for scale in ("train", "native"):
        cli_predict(run_dir, tmp_path / "in.png", tmp_path / scale, "--seed", "5", "--scale", scale)
        expected = read_rgb(tmp_path / scale / "in.png")
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        [served] = load_run_model(str(run_dir), "cpu", scale=scale).run([Job(rgb, seed=5)])
        np.testing.assert_array_equal(served, expected)
        outputs[scale] = served
    assert np.abs(outputs["train"].astype(int) - outputs["native"]).max() > 0


def test_run_model_without_photo_recipe_refuses_photos(run_dir: Path, edge_images: list[np.ndarray]) -> None:
    """The trainer's RunModel makes A from photos only with the recipe the command hands it."""
    bare = RunModel(run_dir, dropout=False)
    assert bare.info()["from_photos"] is False and "without a photo recipe" in bare.info()["from_photos_note"]
    photo = np.repeat(edge_images[0][..., None], 3, axis=2)
    [refused] = bare.run([Job(photo, from_photo=True)])
    assert isinstance(refused, PairforgeError) and "upload an A image instead" in str(refused)
    [made] = load_run_model(str(run_dir), device="cpu", dropout=False).run([Job(photo, from_photo=True)])
    assert isinstance(made, np.ndarray)
