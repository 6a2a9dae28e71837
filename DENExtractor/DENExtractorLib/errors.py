"""Errors that DENExtractor reports to users as one line naming the file and the fault."""

from __future__ import annotations

from pathlib import Path


class DENError(Exception):
    """A fault in the user's input or settings, reported as ``"<source>: <fault>"`` on one line."""

    def __init__(self, source: str | Path, fault: str) -> None:
        self.source = str(source)
        self.fault = " ".join(str(fault).split())
        super().__init__(f"{self.source}: {self.fault}")

    def __reduce__(self) -> tuple:
        """Pickle by (source, fault), so the error survives the trip back from a worker process."""
        return (DENError, (self.source, self.fault))


def describe_error(error: BaseException, limit: int = 200) -> str:
    """One line of at most ``limit`` characters describing an exception raised by a library we call."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ExtractionCancelled(DENError):
    """The user cancelled an extraction before it finished; nothing was written."""

    def __init__(self, source: str | Path) -> None:
        super().__init__(source, "extraction cancelled by the user; no output was written")
