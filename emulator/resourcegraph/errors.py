"""The error every stage of the KQL subset raises, with the line and column it points at."""

from __future__ import annotations


class KqlError(Exception):
    """A query the emulator refuses: ``code`` is ``UnsupportedOperator`` (valid KQL outside the subset)
    or ``InvalidQuery``; ``message`` names the offending token and where it is."""

    def __init__(self, code: str, message: str, position: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position  # 0-based offset into the query, when known


def _location(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    column = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _invalid(src: str, pos: int, message: str) -> KqlError:
    return KqlError("InvalidQuery", f"{message} (at {_location(src, pos)})", pos)


def _unsupported(src: str, pos: int, what: str, supported: str) -> KqlError:
    return KqlError(
        "UnsupportedOperator",
        f"{what} is not supported by the emulator's Resource Graph subset (supported: {supported}) "
        f"(at {_location(src, pos)})",
        pos,
    )
