"""One process owns an output folder (pairforge/locks.py): a second is refused by name, a crash frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pairforge.files import LOCK_NAME
from pairforge.locks import FolderBusyError, hold, holder
from pairforge.pairs import discover

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pairforge.locks import hold
    with hold(sys.argv[1], "run folder"):
        print("held", flush=True)
        time.sleep(60)
    """
)


def _start_holder(folder: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    process = _start_holder(tmp_path)
    try:
        with pytest.raises(FolderBusyError) as caught, hold(tmp_path, "run folder"):
            pass
        message = str(caught.value)
        assert f"process {process.pid}" in message
        assert "run folder" in message and str(tmp_path) in message
        assert holder(tmp_path)["pid"] == process.pid
    finally:
        process.kill()
        process.wait()


def test_a_killed_holder_leaves_no_lock_to_clean(tmp_path: Path) -> None:
    process = _start_holder(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the stale file stays, its lock does not
    with hold(tmp_path) as path:
        assert holder(tmp_path)["pid"] == os.getpid()
        assert path.exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_lock_is_released_on_an_exception_and_reusable_in_process(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), hold(tmp_path):
        raise RuntimeError("boom")
    with hold(tmp_path):
        with pytest.raises(FolderBusyError):  # flock locks are per open file: a second open in one process waits too
            with hold(tmp_path):
                pass
    started = time.monotonic()
    with hold(tmp_path):
        pass
    assert time.monotonic() - started < 5


def test_the_lock_file_is_not_an_input(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("{}")
    found, rejects = discover(tmp_path)
    assert found == [] and rejects == []
