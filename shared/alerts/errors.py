"""Azure's error code and message read back out of a recorded reason (pure): the one reader the report's failure
groups and ``vmkeeper jobs --failed`` share. A reason is what a job recorded: ``ARM 403: (AuthorizationFailed) The
client …`` (our ARM errors), ``(Code) Message`` (the SDKs' HttpResponseError), ``Code: message`` (our own steps)."""

from __future__ import annotations

import re

_ARM = re.compile(r"^(?P<where>.*?)ARM (?P<status>\d{3}): (?P<rest>.*)$", re.DOTALL)
_PARENTHESIZED = re.compile(r"\((?P<code>[A-Za-z][\w.]+)\)\s*(?P<message>.*)", re.DOTALL)
# "OperationNotAllowed: …", "QuotaExceeded (…)", "Conflict - …": a code leading the reason.
_LEADING = re.compile(r"^(?P<code>[A-Z][A-Za-z0-9]+(?:\.[A-Z][A-Za-z0-9]+)*)(?::|\s\(|\s-)\s*(?P<message>.*)", re.DOTALL)


def split_error(text: str) -> tuple[str, str]:
    """(Azure's error code, its message); ("HTTP<status>", text) for an ARM error without a code, ("", text) when
    the reason carries none."""
    text = (text or "").strip()
    arm = _ARM.match(text)
    rest = arm.group("rest") if arm else text
    found = _PARENTHESIZED.search(rest) or _LEADING.match(rest)
    if not found:
        return (f"HTTP{arm.group('status')}" if arm else ""), text
    return found.group("code"), found.group("message").split("\nCode:", 1)[0].strip()


def code_of(text: str) -> str:
    """Azure's error code in a reason, "" when it names none."""
    code, _ = split_error(text)
    return "" if code.startswith("HTTP") else code
