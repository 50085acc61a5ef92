"""Resource Graph: one query across every subscription in scope, paged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def query_all(graph: Any, subscriptions: list[str], query: str) -> Iterator[dict[str, Any]]:
    """Every row of ``query``, page after page (``$skipToken``)."""
    from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

    token = None
    while True:
        page = graph.resources(QueryRequest(subscriptions=subscriptions, query=query,
                                            options=QueryRequestOptions(skip_token=token) if token else None))
        yield from page.data
        token = page.skip_token
        if not token:
            return
