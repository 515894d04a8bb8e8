"""Exception types shared by every pairforge package."""

from __future__ import annotations


class PairforgeError(Exception):
    """Base class: an error the CLI reports as a one-line message, without a traceback."""


class ConfigError(PairforgeError, ValueError):
    """An invalid configuration value.

    Args:
        field: the configuration field (or CLI option) at fault.
        value: the offending value.
        allowed: what would have been accepted.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field}={value!r}: expected {allowed}")


class SampleError(PairforgeError):
    """One input sample cannot be used; the runner turns it into a reject row.

    A reject row carries ``reason``, a fixed code that groups rejects (``jq -r .reason
    rejects.jsonl | sort | uniq -c``), and ``detail``, the specifics of this sample
    (sizes, counts, the file at fault).

    Args:
        reason: a short fixed reason code ("truncated image", "already grayscale"); never
            counts, sizes or paths.
        detail: what exactly was wrong with this sample ("12 pixels with ids 7, 9").
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # keep reason and detail across processes
        return (type(self), (self.reason, self.detail))

    def row(self, path: str, key: str | None = None) -> dict[str, str]:
        """The reject row of this sample (``rejects.jsonl``)."""
        row = {"path": path}
        if key is not None:
            row["key"] = key
        return {**row, "reason": self.reason, "detail": self.detail}


def reject_row(path: str, reason: str, detail: str = "", key: str | None = None) -> dict[str, str]:
    """A reject row for an input turned away before any stage ran (unmatched, unsupported type)."""
    return SampleError(reason, detail).row(path, key)


class DatasetError(PairforgeError):
    """A dataset folder (pairs or shards) is missing, malformed or inconsistent."""
