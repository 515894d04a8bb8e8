"""Helpers shared by the benchmark scripts: synthetic corpora from scikit-image photos, timing, memory."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from pairforge.runner import default_workers


def machine() -> str:
    """One line describing this machine (CPU model, cores, memory, Python)."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        memory = float("nan")
    return f"{model}, {default_workers()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def skimage_photos() -> list[np.ndarray]:
    from skimage import data

    return [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")]


def random_crop(rng: np.random.Generator, photo: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = max(height / photo.shape[0], width / photo.shape[1]) * (1.0 + rng.random())
    resized = cv2.resize(photo, (round(photo.shape[1] * scale) + 1, round(photo.shape[0] * scale) + 1), interpolation=cv2.INTER_AREA)
    top = int(rng.integers(0, resized.shape[0] - height + 1))
    left = int(rng.integers(0, resized.shape[1] - width + 1))
    crop = resized[top : top + height, left : left + width]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


class TreeMemory:
    """Samples the summed RSS of a process and all its descendants (Linux /proc), keeping the peak."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(self.interval)


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int(Path(f"/proc/{entry}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_measured(command: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; returns (seconds, peak tree RSS bytes, completed process)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemory(process.pid) as memory:
        stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return seconds, memory.peak, completed
