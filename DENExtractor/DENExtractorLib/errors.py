"""Errors that DENExtractor reports to users as one line naming the file and the fault."""

from __future__ import annotations

from pathlib import Path


class DENError(Exception):
    """A fault in the user's input or settings, reported as ``"<source>: <fault>"`` on one line."""

    def __init__(self, source: str | Path, fault: str) -> None:
        self.source = printable(str(source))
        self.fault = printable(" ".join(str(fault).split()))
        super().__init__(f"{self.source}: {self.fault}")

    def __reduce__(self) -> tuple:
        """Pickle by (source, fault), so the error survives the trip back from a worker process."""
        return (DENError, (self.source, self.fault))


PLAIN_FAULTS = {MemoryError: "out of memory", RecursionError: "data nested too deeply"}
"""What an exception that says nothing itself means, in words."""


def printable(text: str) -> str:
    """``text`` with control characters (a NUL byte from a CSV cell...) written as ``\\xNN``, so a message line
    prints as one plain line."""
    return "".join(f"\\x{ord(character):02x}" if ord(character) < 32 or ord(character) == 127 else character
                   for character in text)


def describe_error(error: BaseException, limit: int = 200) -> str:
    """One line of at most ``limit`` characters describing an exception raised by a library we call."""
    plain = next((words for kind, words in PLAIN_FAULTS.items() if isinstance(error, kind)), None)
    text = plain or " ".join(str(error).split()) or "an unexpected error"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ExtractionCancelled(DENError):
    """The user cancelled an extraction before it finished; nothing was written."""

    def __init__(self, source: str | Path) -> None:
        super().__init__(source, "extraction cancelled by the user; no output was written")
