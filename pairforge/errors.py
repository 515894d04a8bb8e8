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

    Args:
        reason: a short, human-readable reason ("truncated image", "already grayscale").
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DatasetError(PairforgeError):
    """A dataset folder (pairs or shards) is missing, malformed or inconsistent."""
