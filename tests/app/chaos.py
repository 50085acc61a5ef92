"""Queues as they misbehave, for tests: the app's own wiring with its queue sends duplicated, delayed
or lost with the worker (shared/wiring.py builds everything else as in Azure)."""

from __future__ import annotations

import random
import time

from shared import wiring


class ChaosQueue:
    """A Storage queue as queues and hosts misbehave: a send may be duplicated (at-least-once
    delivery) or delayed, or fail before it is made (the worker died between its ARM write and its
    queue update; the host then redelivers the message it was running). Loses nothing else."""

    def __init__(self, queue, rng: random.Random, fail: float, duplicate: float, delay: float, tally: dict,
                 only=None):
        self.queue, self.rng, self.fail, self.duplicate, self.delay, self.tally = queue, rng, fail, duplicate, delay, tally
        self.only = only or (lambda content: True)  # which sends misbehave (by their content)

    def send_message(self, content, visibility_timeout=None, **kwargs):
        if not self.only(content):
            return self.queue.send_message(content, visibility_timeout=visibility_timeout, **kwargs)
        roll = self.rng.random()
        if roll < self.fail:
            self.tally["killed"] += 1
            raise ConnectionResetError("soak: the worker died before its queue update")
        delay = visibility_timeout or 0
        if self.rng.random() < self.delay:
            delay += self.rng.randint(1, 3)
            self.tally["delayed"] += 1
        sent = self.queue.send_message(content, visibility_timeout=delay or None, **kwargs)
        if self.rng.random() < self.duplicate:
            self.queue.send_message(content, visibility_timeout=delay + self.rng.randint(0, 2), **kwargs)
            self.tally["duplicated"] += 1
        return sent

    def __getattr__(self, name):
        return getattr(self.queue, name)


class ChaosStorage:
    def __init__(self, storage, chaos):
        self.storage, self.chaos = storage, chaos

    def queue(self, name: str):
        real = self.storage.queue(name)
        return real if name.endswith("-poison") else self.chaos(real)

    def table(self, name: str):
        return self.storage.table(name)


class ChaosWiring(wiring.Wiring):
    """The app's own wiring, its queues behind ChaosQueue."""

    def __init__(self, rng: random.Random, tally: dict, fail: float = 0.05, duplicate: float = 0.15,
                 delay: float = 0.15, only=None, **kwargs):
        super().__init__(**kwargs)
        self._chaos = lambda q: ChaosQueue(q, rng, fail=fail, duplicate=duplicate, delay=delay, tally=tally, only=only)

    @property
    def storage(self):
        real = super().storage
        return self._once("chaos-storage", lambda: ChaosStorage(real, self._chaos))


def retried(action, attempts: int = 20, pause: float = 0.0):
    """An operator's call (or a timer firing) is tried again when ARM or the queue fails it."""
    for i in range(attempts):
        try:
            return action()
        except Exception:  # noqa: BLE001
            if i == attempts - 1:
                raise
            time.sleep(pause)
    return None
