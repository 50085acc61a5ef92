"""Injected faults, matched per operation: 429, 500, 503, connection reset, slow response, and a
long-running operation that ends Failed. Each rule fires with a probability or a fixed count.
Providers may add kinds they act on themselves (``FAULT_KINDS``, e.g. Compute's VM agent that never
gets ready); core only stores and matches those."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

KINDS = ("429", "500", "503", "reset", "slow", "lro_failed")
FIELDS = {"kind", "method", "path", "operation", "probability", "count", "delay_ms", "retry_after"}


@dataclass
class FaultRule:
    kind: str
    method: str = "*"  # HTTP method or "*"
    path: str = ".*"  # regex searched (case-insensitive) in the request path
    operation: str | None = None  # regex matched against the RBAC operation, e.g. "Microsoft.Compute/snapshots/write"
    probability: float | None = None
    count: int | None = None  # fire this many times, then stop
    delay_ms: int = 2000  # for "slow"
    retry_after: int = 1  # for "429"
    fired: int = 0
    _path_re: re.Pattern[str] = field(init=False, repr=False)
    _op_re: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.probability is None and self.count is None:
            raise ValueError("faults[]: give a probability (0..1) or a count")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError("faults[].probability: must be between 0 and 1")
        try:
            self._path_re = re.compile(self.path, re.IGNORECASE)
            self._op_re = re.compile(self.operation, re.IGNORECASE) if self.operation else None
        except re.error as exc:
            raise ValueError(f"faults[].path/operation: invalid regex ({exc})") from None

    def matches(self, method: str, path: str, operation: str) -> bool:
        if self.method not in ("*", method):
            return False
        if not self._path_re.search(path):
            return False
        return self._op_re is None or bool(self._op_re.fullmatch(operation))

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "operation": self.operation,
            "probability": self.probability,
            "count": self.count,
            "delay_ms": self.delay_ms,
            "retry_after": self.retry_after,
            "fired": self.fired,
        }


class Faults:
    def __init__(self, seed: int | None = None, kinds: tuple[str, ...] = KINDS):
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.kinds = kinds
        self.rules: list[FaultRule] = []

    def parse(self, raw: dict, where: str = "faults[]") -> FaultRule:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: a fault rule object")
        unknown = set(raw) - FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        if raw.get("kind") not in self.kinds:
            raise ValueError(f"{where}.kind: '{raw.get('kind')}' is not one of {', '.join(self.kinds)}")
        return FaultRule(**raw)

    def set_rules(self, rules: list[dict], seed: int | None = None) -> None:
        parsed = [self.parse(raw, f"faults[{i}]") for i, raw in enumerate(rules)]
        with self._lock:
            self.rules = parsed
            if seed is not None:
                self._rng = random.Random(seed)

    def add_rule(self, raw: dict) -> FaultRule:
        """One more rule after those set (a helper adding a fault keeps the others)."""
        rule = self.parse(raw, "fault")
        with self._lock:
            self.rules.append(rule)
        return rule

    def pick(self, method: str, path: str, operation: str, kinds: tuple[str, ...]) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.kind not in kinds or not rule.matches(method, path, operation):
                    continue
                if rule.count is not None:
                    if rule.fired >= rule.count:
                        continue
                elif self._rng.random() >= (rule.probability or 0):
                    continue
                rule.fired += 1
                return rule
        return None
