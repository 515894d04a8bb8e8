"""The local web server behind ``pairforge serve``: the page, a small HTTP API and one inference queue.

The server knows nothing about torch: it is handed an :class:`ImageModel` (for a run folder,
``pairforge.serve.model.RunModel``, which wraps predict's machinery) and calls it from one
worker thread, so the event loop keeps answering while a prediction runs::

    server = PageServer(model, ServeConfig(port=8000))
    serve_forever(server, on_ready=print)              # the CLI: blocks until Ctrl+C
    with BackgroundServer(server) as url:              # tests and benchmarks: a thread
        ...

API (the page uses nothing else):

- ``GET /api/info``: the model's facts (kind, channels, palette, size, run name) plus upload limits;
- ``POST /api/predict``: multipart ``image`` (+ optional ``from_photo``, ``seed``) -> output PNG;
- ``POST /api/prepare``: multipart ``image`` (+ ``from_photo``) -> the A image the model would take;
- ``GET /api/stats``: requests, batches and errors so far.

Uploads are read into memory with a byte limit (never written to disk) and decoded with a
pixel limit checked on the header before any pixel is allocated; bad input gets a 4xx JSON
``{"error": ...}`` and the server carries on. Every bad request (a 4xx answer, a client that
disconnects mid-upload, a request aiohttp cannot parse such as an oversized header) is one
warning line naming the client, the status and the cause; tracebacks are logged only for
server bugs (a 500).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import numpy as np
from aiohttp import BodyPartReader, web
from aiohttp.http import HttpProcessingError

from pairforge.errors import ConfigError, PairforgeError, SampleError
from pairforge.imageio import decode_image, encode_png

logger = logging.getLogger("pairforge.serve")  # the package's name: what users see in the log

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Largest accepted upload (the ``image`` field), in bytes."""
MAX_UPLOAD_PIXELS = 20_000_000
"""Largest accepted image, in pixels (checked on the header, before decoding)."""
MAX_SEED = 2**31 - 1
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


@dataclass(frozen=True)
class Job:
    """One decoded request for the model.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, as ``pairforge predict`` reads files.
        from_photo: the image is a photo: build A with the run's dataset recipe first.
        seed: seed of the test-time dropout noise.
        want: ``output`` (the generator's output) or ``input`` (the A image the model takes).
    """

    image: np.ndarray
    from_photo: bool = False
    seed: int = 0
    want: str = "output"


class ImageModel(Protocol):
    """What the server needs from a model. Called from one worker thread only."""

    def info(self) -> dict[str, Any]:
        """JSON-ready facts for ``/api/info``: run, kind, channels, size, palette, ..."""
        ...

    def run(self, jobs: Sequence[Job]) -> list[np.ndarray | Exception]:
        """Results in job order: an uint8 image, or the error (``PairforgeError``) of that job."""
        ...


@dataclass(frozen=True)
class ServeConfig:
    """How the server listens and queues.

    Attributes:
        host: address to bind (``127.0.0.1``: this machine only).
        port: TCP port (0: any free port).
        max_batch: most queued requests handed to the model in one call.
        queue_size: requests allowed to wait; more get 503.
        max_upload_bytes: largest ``image`` field.
        max_pixels: largest image (width x height).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 4
    queue_size: int = 64
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_UPLOAD_PIXELS

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", self.port, "0..65535 (0 picks a free port)")
        if self.max_batch < 1:
            raise ConfigError("max_batch", self.max_batch, "an integer >= 1")
        if self.queue_size < 1:
            raise ConfigError("queue_size", self.queue_size, "an integer >= 1")
        if self.max_upload_bytes < 1 or self.max_pixels < 1:
            raise ConfigError("max_upload_bytes/max_pixels", (self.max_upload_bytes, self.max_pixels), "positive limits")


def exposure_warning(host: str) -> str | None:
    """A warning when ``host`` makes the server reachable from other machines, else None."""
    if host in LOOPBACK_NAMES:
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass
    return (f"--host {host} makes the server reachable from other machines: anyone who can reach this port can "
            "use the model and send it uploads (there is no authentication). Use the default 127.0.0.1 unless "
            "you mean it.")


CLIENT_GONE = 499
"""Status logged for a request whose client disconnected before it was answered (nginx's "client closed
request"); no answer is sent."""
UNPARSABLE_STATUS = 400
"""aiohttp answers every request it cannot parse (a header line over its limit, a bad request line) with 400."""


def log_bad_request(client: str | None, request: str, status: int, cause: str) -> None:
    """The one log line of a bad request: client, request, status, cause (a warning, never a traceback)."""
    sent = " (not sent: the client is gone)" if status == CLIENT_GONE else ""
    logger.warning("bad request from %s: %s -> %d%s: %s", client or "an unknown client", request, status, sent,
                   _shorten(" ".join(cause.split())))


def _shorten(text: str, limit: int = 300) -> str:
    """At most ``limit`` characters (a cause can quote what the client sent)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's connection logger: a request the client got wrong is one line, a server bug keeps its traceback.

    aiohttp logs a request it cannot parse with ``exception("Error handling request from %s",
    client, exc_info=error)`` (or ``debug`` for non-HTTP bytes on a first request) and answers 400;
    such an error, or a connection the client closed, becomes :func:`log_bad_request`'s line.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if not self._client_error(args, exc_info):
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        if not self._client_error(args, kwargs.get("exc_info")):
            self.logger.debug(msg, *args, **kwargs)

    @staticmethod
    def _client_error(args: tuple[object, ...], exc_info: Any) -> bool:
        """Log ``exc_info`` as a bad request and return True when the client caused it."""
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1] if exc_info else None
        client = str(args[0]) if len(args) == 1 else None
        if isinstance(error, HttpProcessingError):
            cause = error.message if isinstance(error.message, str) and error.message else str(error)
            log_bad_request(client, "unparsable HTTP request", UNPARSABLE_STATUS, f"{type(error).__name__}: {cause}")
            return True
        if isinstance(error, ConnectionError):
            log_bad_request(client, "HTTP request", CLIENT_GONE, f"{type(error).__name__}: {error}")
            return True
        return False


class ApiError(Exception):
    """An HTTP error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_status(exc: Exception) -> int:
    """HTTP status for an error a job raised: 413 too large, 400 bad image, 422 not for this model, 500 bug."""
    if isinstance(exc, SampleError):
        return 413 if exc.reason.startswith("too large") else 400
    if isinstance(exc, PairforgeError):
        return 422
    return 500


@dataclass
class _Pending:
    data: bytes
    from_photo: bool
    seed: int
    want: str
    future: asyncio.Future[bytes | Exception]


@dataclass
class ServeStats:
    """Counters for ``/api/stats`` (updated on the event loop)."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    errors: int = 0
    busy_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "batches": self.batches, "largest_batch": self.largest_batch,
                "errors": self.errors, "busy_seconds": round(self.busy_seconds, 4)}


class PageServer:
    """The aiohttp application around one :class:`ImageModel`, with its worker queue.

    Args:
        model: the model (called from one worker thread).
        config: listening and limits.
    """

    def __init__(self, model: ImageModel, config: ServeConfig) -> None:
        self.model = model
        self.config = config
        self.stats = ServeStats()
        self._info = {**model.info(), "max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels}
        self._static = {name: (resources.files("pairforge.serve") / "static" / name).read_bytes() for name in STATIC_FILES}
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # ---- application ------------------------------------------------------------------------
    def application(self) -> web.Application:
        """The aiohttp app: static page, API routes, JSON errors, worker start/stop hooks."""
        app = web.Application(middlewares=[self._errors], client_max_size=self.config.max_upload_bytes + 65536)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static_file)
        app.router.add_get("/api/info", self._api_info)
        app.router.add_get("/api/stats", self._api_stats)
        app.router.add_post("/api/predict", self._api_predict)
        app.router.add_post("/api/prepare", self._api_prepare)
        app.on_startup.append(self._start_worker)
        app.on_cleanup.append(self._stop_worker)
        return app

    async def start(self) -> str:
        """Bind and serve; returns the URL (with the real port when ``port`` is 0).

        Raises:
            PairforgeError: the address cannot be bound (port in use, unknown host).
        """
        self._runner = web.AppRunner(self.application(), access_log=None, handle_signals=False,
                                     logger=_ProtocolLog(logger, {}))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise PairforgeError(
                f"cannot listen on {self.config.host}:{self.config.port} ({exc.strerror or exc}): "
                "pick another --port (0 = any free port) or --host"
            ) from None
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in str(host) else host
        self.url = f"http://{shown}:{port}/"
        return self.url

    async def stop(self) -> None:
        """Stop listening, finish the worker, free the model thread."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- worker -----------------------------------------------------------------------------
    async def _start_worker(self, app: web.Application) -> None:
        self._queue = asyncio.Queue(self.config.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pairforge-model")
        self._worker = asyncio.create_task(self._work(), name="pairforge-serve-worker")

    async def _stop_worker(self, app: web.Application) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _work(self) -> None:
        """Take the waiting requests (up to max_batch), run them in the model thread, answer each."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.config.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [pending for pending in batch if not pending.future.done()]  # client went away
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._process, batch)
            except Exception as exc:  # noqa: BLE001 - answered as a 500 to every waiting request
                logger.exception("model call failed")
                results = [exc] * len(batch)
            self.stats.busy_seconds += time.perf_counter() - started
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

    def _process(self, batch: list[_Pending]) -> list[bytes | Exception]:
        """In the model thread: decode (pixel limit first), run the model, encode PNGs."""
        results: list[bytes | Exception] = [ValueError("not run")] * len(batch)
        jobs: list[Job] = []
        positions: list[int] = []
        for index, pending in enumerate(batch):
            try:
                image = decode_image(pending.data, max_pixels=self.config.max_pixels)
            except SampleError as exc:
                results[index] = exc
                continue
            jobs.append(Job(image, pending.from_photo, pending.seed, pending.want))
            positions.append(index)
        if jobs:
            for index, output in zip(positions, self.model.run(jobs), strict=True):
                results[index] = output if isinstance(output, Exception) else encode_png(output)
        return results

    async def _submit(self, pending: _Pending) -> bytes:
        assert self._queue is not None
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise ApiError(503, f"busy: {self._queue.qsize()} requests are waiting; try again in a moment") from None
        self.stats.requests += 1
        result = await pending.future
        if isinstance(result, Exception):
            status = error_status(result)
            if status == 500:
                logger.error("prediction failed: %r", result)
                raise ApiError(500, f"internal error: {type(result).__name__}: {result}")
            message = f"upload: {result}" if isinstance(result, SampleError) else str(result)
            raise ApiError(status, message)
        return result

    # ---- handlers ---------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """JSON errors; one log line per bad request (client, cause, status), a traceback only for a server bug."""
        try:
            return await handler(request)
        except ApiError as exc:
            if exc.status >= 400:
                self._bad_request(request, exc.status, exc.message)
            return web.json_response({"error": exc.message}, status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {413: f"upload too large: the limit is {self.config.max_upload_bytes:,} bytes"}.get(
                exc.status, exc.reason)
            self._bad_request(request, exc.status, message)
            return web.json_response({"error": message}, status=exc.status)
        except asyncio.CancelledError:
            raise
        except ConnectionError as exc:  # the client went away mid-request: nothing can be answered
            self._bad_request(request, CLIENT_GONE, f"the client disconnected before the request was read "
                                                    f"({type(exc).__name__}: {exc})")
            return web.Response(status=CLIENT_GONE)  # never sent: the connection is closed
        except Exception as exc:  # noqa: BLE001 - never a traceback page; logged with its stack
            logger.exception("unhandled error on %s", request.path)
            self.stats.errors += 1
            return web.json_response({"error": f"internal error: {type(exc).__name__}: {exc}"}, status=500)

    def _bad_request(self, request: web.Request, status: int, cause: str) -> None:
        """Count a request the client got wrong and log it as one line."""
        self.stats.errors += 1
        log_bad_request(request.remote, f"{request.method} {request.path}", status, cause)

    async def _page(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise ApiError(404, f"no such file: {name}")
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "no-cache"}
        return web.Response(body=self._static[name], content_type=STATIC_FILES[name], charset="utf-8",
                            headers=headers)

    async def _api_info(self, request: web.Request) -> web.Response:
        return web.json_response(self._info)

    async def _api_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats.to_dict(), "queued": self._queue.qsize() if self._queue else 0})

    async def _api_predict(self, request: web.Request) -> web.Response:
        return await self._answer(request, "output")

    async def _api_prepare(self, request: web.Request) -> web.Response:
        return await self._answer(request, "input")

    async def _answer(self, request: web.Request, want: str) -> web.Response:
        data, from_photo, seed = await self._read_form(request)
        future: asyncio.Future[bytes | Exception] = asyncio.get_running_loop().create_future()
        png = await self._submit(_Pending(data, from_photo, seed, want, future))
        return web.Response(body=png, content_type="image/png",
                            headers={"Cache-Control": "no-store", "X-Pairforge-Seed": str(seed)})

    async def _read_form(self, request: web.Request) -> tuple[bytes, bool, int]:
        """The ``image`` bytes (kept in memory, size-limited), ``from_photo`` and ``seed`` of a multipart form."""
        limit = self.config.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + 65536:
            raise ApiError(413, f"upload too large: {request.content_length:,} bytes; the limit is {limit:,} bytes")
        if not request.body_exists:
            raise ApiError(400, "empty request: send multipart/form-data with the picture in an `image` field")
        if request.content_type != "multipart/form-data":
            raise ApiError(415, "send multipart/form-data with the picture in an `image` field "
                                f"(got {request.content_type or 'no content type'})")
        image: bytes | None = None
        fields: dict[str, str] = {}
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise ApiError(400, "nested multipart bodies are not accepted: send one `image` field")
                name = part.name
                if name == "image":
                    image = await self._read_limited(part, limit, "the `image` field")
                elif name in ("from_photo", "seed"):
                    fields[name] = (await self._read_limited(part, 64, f"`{name}`")).decode("utf-8", "replace").strip()
                else:
                    await self._read_limited(part, limit, f"`{name}`")
        except ApiError:
            raise
        except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
            raise ApiError(400, f"malformed multipart body: {exc}") from None
        if image is None:
            raise ApiError(400, "no `image` field: send the picture as multipart field `image`")
        if not image:
            raise ApiError(400, "empty upload: the `image` field has 0 bytes")
        return image, _parse_flag(fields.get("from_photo", "")), _parse_seed(fields.get("seed", ""))

    @staticmethod
    async def _read_limited(part: Any, limit: int, what: str) -> bytes:
        chunks = bytearray()
        while chunk := await part.read_chunk(65536):
            chunks += chunk
            if len(chunks) > limit:
                raise ApiError(413, f"upload too large: {what} is over the limit of {limit:,} bytes")
        return bytes(chunks)


def _parse_flag(text: str) -> bool:
    value = text.lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ApiError(400, f"from_photo={text!r}: expected 1/true/on or 0/false/off")


def _parse_seed(text: str) -> int:
    if not text:
        return 0
    try:
        seed = int(text)
    except ValueError:
        raise ApiError(400, f"seed={text!r}: expected an integer 0..{MAX_SEED}") from None
    if not 0 <= seed <= MAX_SEED:
        raise ApiError(400, f"seed={seed}: expected an integer 0..{MAX_SEED}")
    return seed


def serve_forever(server: PageServer, on_ready: Callable[[str], None]) -> None:
    """Serve until Ctrl+C (the CLI). ``on_ready(url)`` is called once the port is bound.

    Raises:
        PairforgeError: the address cannot be bound.
    """

    async def main() -> None:
        url = await server.start()
        on_ready(url)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        logger.info("stopped")


class BackgroundServer:
    """Run a :class:`PageServer` on its own event loop in a thread; the context value is the URL."""

    def __init__(self, server: PageServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pairforge-serve", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=60)
        except BaseException:
            self._shutdown()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=60)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)
        self._loop.close()
