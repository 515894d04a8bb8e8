"""`pairforge serve` against hostile clients and inputs: one log line per bad request, one size rule with predict."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.commands.serve import load_run_model
from pairforge.serve import BackgroundServer, PageServer, ServeConfig
from tests.pairforge.test_serve import multipart, png, post, request


@pytest.fixture(scope="module")
def served(tiny_edges_run: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`pairforge serve` in its own process (its stderr is the log a user sees): (URL, process)."""
    process = subprocess.Popen([sys.executable, "-m", "pairforge", "serve", str(tiny_edges_run), "--port", "0",
                                "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    if " at http://" not in line:
        process.kill()
        pytest.fail(line + (process.stderr.read() if process.stderr else ""))
    try:
        yield line.split(" at ", 1)[1].split()[0], process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").strip("/").rsplit(":", 1)
    return host, int(port)


def _errors_counted(url: str) -> int:
    return json.loads(request(url + "api/stats")[2])["errors"]


def test_disconnecting_clients_and_oversized_headers_are_one_log_line_each(
        served: tuple[str, subprocess.Popen[str]], tiny_edges_run: Path) -> None:
    url, process = served
    address = _address(url)
    before = _errors_counted(url)
    # 1. half a multipart upload, then the client closes the connection
    body, content_type = multipart({"image": png(np.full((64, 64), 255, np.uint8)) + bytes(200_000)})
    head = (f"POST /api/predict HTTP/1.1\r\nHost: {address[0]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(address, timeout=30) as client:
        client.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)  # the server is reading the upload when the client goes
    deadline = time.monotonic() + 30
    while _errors_counted(url) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _errors_counted(url) == before + 1
    # 2. a 100 kB header line
    with socket.create_connection(address, timeout=30) as client:
        client.sendall(f"GET /api/info HTTP/1.1\r\nHost: {address[0]}\r\nX-Long: {'a' * 100_000}\r\n\r\n".encode())
        answer = client.recv(65536).decode("latin-1")
    assert answer.split("\r\n", 1)[0].split()[1] == "400", answer[:200]
    # 3. an upload that is not an image: answered with a reason, logged as one line too
    assert post(url, image=b"not a picture")[0] == 400
    assert request(url + "api/info")[0] == 200  # still serving
    process.send_signal(signal.SIGINT)
    _, log = process.communicate(timeout=60)
    assert process.returncode == 0, log
    assert "Traceback" not in log, log
    lines = [line for line in log.splitlines() if "bad request" in line]
    assert len(lines) == 3, log
    gone, header, upload = lines
    assert gone.startswith("WARNING pairforge.serve: bad request from 127.0.0.1: POST /api/predict -> 499 (not sent")
    assert "disconnected" in gone and "ConnectionResetError" in gone
    assert header.startswith("WARNING pairforge.serve: bad request from 127.0.0.1: unparsable HTTP request -> 400: ")
    assert "LineTooLong" in header or "BadHttpMessage" in header
    assert len(header) < 400  # the cause, not the 100 kB line
    assert upload.startswith("WARNING pairforge.serve: bad request from 127.0.0.1: POST /api/predict -> 400: upload: "
                             "not an image")
    assert "ERROR" not in log and "aiohttp" not in log, log  # nothing else about them: one line per bad request


def test_a_server_bug_keeps_its_traceback(tiny_edges_run: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Only client mistakes are shortened: an exception in the model is a 500 with its stack in the log."""

    class Broken:
        def info(self) -> dict[str, object]:
            return {}

        def run(self, jobs: object) -> list[object]:
            raise KeyError("model bug")

    with BackgroundServer(PageServer(Broken(), ServeConfig(port=0))) as url:  # type: ignore[arg-type]
        status, _, body = post(url, image=png(np.full((64, 64), 255, np.uint8)))
    assert status == 500 and "KeyError" in json.loads(body)["error"]
    assert any(record.exc_info for record in caplog.records if record.name == "pairforge.serve")


def test_the_processed_size_limit_is_predicts_rule(tiny_edges_run: Path, tmp_path: Path) -> None:
    """A 1x2000 strip is run at 64x128000 px at the training scale: over a limit of 1e6 for predict and serve alike."""
    strip = np.full((1, 2000), 255, np.uint8)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "strip.png").write_bytes(png(strip))
    predicted = CliRunner().invoke(cli, ["predict", str(tiny_edges_run), str(tmp_path / "in" / "strip.png"), "-o",
                                         str(tmp_path / "out"), "--device", "cpu", "--max-pixels", "1000000"])
    assert predicted.exit_code == 1
    [reject] = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert reject["reason"] == "too large"
    model = load_run_model(str(tiny_edges_run), device="cpu", max_pixels=1_000_000)
    with BackgroundServer(PageServer(model, ServeConfig(port=0, max_pixels=1_000_000))) as url:
        status, _, body = post(url, image=png(strip))
    assert status == 413
    assert json.loads(body)["error"] == f"upload: too large: {reject['detail']}"
    assert reject["detail"].startswith("2000x1 = 2,000 pixels runs at 128000x64 = 8,192,000 pixels at the training "
                                       "scale (shorter side 64 px), over the limit of 1,000,000")
