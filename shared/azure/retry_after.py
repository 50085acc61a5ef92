"""ARM's advice on when to look again, read as azure-core's retry policy reads it: ``Retry-After``
in seconds or as an HTTP date, else ``retry-after-ms`` / ``x-ms-retry-after-ms``."""

from __future__ import annotations

import math
from functools import cache
from types import SimpleNamespace
from typing import Any


@cache
def _policy() -> Any:
    from azure.core.pipeline.policies import RetryPolicy

    return RetryPolicy()


def retry_after_seconds(headers: Any) -> int | None:
    """Whole seconds, at least 1 (a queue's visibility delay is whole seconds); None when ARM
    gives no advice."""
    from azure.core.pipeline import PipelineResponse

    if headers is None:
        return None
    seconds = _policy().get_retry_after(PipelineResponse(None, SimpleNamespace(headers=headers), None))
    return None if seconds is None else max(1, math.ceil(seconds))
