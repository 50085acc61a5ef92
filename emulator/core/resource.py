"""Routes every provider has in the same shape, registered once here instead of copied per type:

- ``add_lists``: a top-level type's lists in a resource group and in a subscription;
- ``add_long_running_delete``: a DELETE that ARM runs as a long-running operation — what is
  already gone answers 204 and sends no event, anything else 202 with the monitor headers, the
  provider's backend deciding (in a :class:`Deletion`) what the delete does and when; the backend is
  also what a resource group's delete runs for each such resource it holds;
- ``add_operation_monitors``: the Azure-AsyncOperation (status body) and Location (202, then the
  result) URLs of a provider's long-running operations, described by a :class:`Monitor`.

Providers call these with their type; their backends (``models.py``) own the state transitions and
the handlers here only parse the request and serialise the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .arm import accepted, in_scope, listing, no_event
from .errors import NotFound
from .lro import Operation
from .routing import Request, Response, Router
from .state import Resource, Store

Render = Callable[[Request, Resource], dict[str, Any]]


def _to_arm(req: Request, resource: Resource) -> dict[str, Any]:
    return resource.to_arm()


# --- lists ------------------------------------------------------------------------------------
def add_lists(
    router: Router,
    resource_type: str,
    *,
    api_versions: Iterable[str],
    render: Render = _to_arm,
    scopes: Sequence[str] = ("group", "subscription"),
    subscription_filter: Callable[[Request, list[Resource]], list[Resource]] | None = None,
) -> None:
    """GET …/resourceGroups/{rg}/providers/{resource_type} and GET …/providers/{resource_type} (the
    ``scopes`` asked for): the resources of that type, paged with nextLink, each drawn by ``render``.
    ``subscription_filter`` narrows the subscription-wide list (e.g. by a ``$filter``)."""
    versions = tuple(api_versions)
    operation = f"{resource_type}/read"
    templates = {
        "group": f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{resource_type}",
        "subscription": f"/subscriptions/{{subscriptionId}}/providers/{resource_type}",
    }
    for scope in scopes:
        group = scope == "group"

        def handler(req: Request, group: bool = group) -> Response:
            items = in_scope(req, resource_type, group=group)
            if not group and subscription_filter is not None:
                items = subscription_filter(req, items)
            return listing(req, [render(req, r) for r in items])

        router.add("GET", templates[scope], handler, operation=operation, api_versions=versions)


# --- long-running deletes -----------------------------------------------------------------------
@dataclass
class Deletion:
    """A delete a backend accepted: the region its operation runs in, what happens when it succeeds
    (``done``: the resource and what goes with it removed) and, optionally, when it fails."""

    location: str
    done: Callable[[], None]
    failed: Callable[[], None] | None = None


def add_long_running_delete(
    router: Router,
    template: str,
    *,
    operation: str,
    api_versions: Iterable[str],
    provider: str,
    find: Callable[[Request], Resource | None],
    begin: Callable[[Store, Resource], Deletion],
) -> None:
    """DELETE ``template``: ``find`` returns the resource or None (raising if its parent is missing);
    None answers 204 without an event; otherwise ``begin`` checks and marks the resource (raising an
    ARM error to refuse) and the operation it starts carries out the Deletion."""

    def delete(req: Request) -> Response:
        resource = find(req)
        if resource is None:
            return no_event(Response(204))
        deletion = begin(req.emulator.store, resource)
        failed = deletion.failed
        op = req.emulator.start_operation(req, deletion.location, on_success=lambda op: deletion.done(),
                                          on_failure=(lambda op: failed()) if failed is not None else None)
        return accepted(req, op, provider, 202)

    router.add("DELETE", template, delete, operation=operation, api_versions=tuple(api_versions))
    router.deletions[operation.rsplit("/", 1)[0].lower()] = begin


# --- operation monitors ---------------------------------------------------------------------------
def subscription_operation(req: Request) -> Operation:
    """The operation a subscription-level monitor URL names (ARM's OperationNotFound otherwise)."""
    op = req.emulator.operations.get(req.params["operationId"])
    if op is None or op.subscription_id.lower() != req.params["subscriptionId"].lower():
        raise NotFound(f"The operation '{req.params['operationId']}' was not found.", code="OperationNotFound")
    return op


@dataclass(frozen=True)
class Monitor:
    """How a provider's monitor URLs find an operation and describe it.

    ``find``: the operation the URL names (raising the provider's not-found error otherwise);
    ``status_id``: the ``id`` of the status body; ``status_details``: extra fields of the status
    body; ``running_headers``: headers added to the Location URL's 202; ``done_status``: the
    Location URL's answer to a finished operation without a result body."""

    find: Callable[[Request], Operation] = subscription_operation
    status_id: Callable[[Request, Operation], str] = lambda req, op: op.id
    status_details: Callable[[Operation], dict[str, Any]] | None = None
    running_headers: Callable[[Request, Operation], dict[str, str]] | None = None
    done_status: int = 204

    def status(self, req: Request, op: Operation) -> Response:
        operations = req.emulator.operations
        body = operations.status_body(op, self.status_id(req, op))
        if self.status_details is not None:
            body.update(self.status_details(op))
        resp = Response(200, body)
        if op.status == "InProgress":
            resp.headers.update(operations.retry_headers(op))
        return resp

    def result(self, req: Request, op: Operation) -> Response:
        resp = req.emulator.operations.location_response(op)
        if resp.status == 202 and self.running_headers is not None:
            resp.headers.update(self.running_headers(req, op))
        if resp.status == 204 and self.done_status != 204:
            return Response(self.done_status, None, resp.headers)
        return resp


def add_operation_monitors(
    router: Router,
    monitor: Monitor,
    *,
    api_versions: Iterable[str],
    status: tuple[str, str] | None = None,
    result: tuple[str, str] | None = None,
    result_by_query: bool = False,
) -> None:
    """Register the monitor URLs: ``status`` and ``result`` are (template, RBAC operation) of the
    Azure-AsyncOperation and Location URLs. With ``result_by_query``, the status URL with
    ``monitor=true`` is the Location URL (ARM's ``…/locations/{region}/operations/{id}``)."""
    versions = tuple(api_versions)
    if status is not None:
        def get_status(req: Request) -> Response:
            op = monitor.find(req)
            if result_by_query and req.query.get("monitor", "").lower() == "true":
                return monitor.result(req, op)
            return monitor.status(req, op)

        router.add("GET", status[0], get_status, operation=status[1], api_versions=versions)
    if result is not None:
        def get_result(req: Request) -> Response:
            return monitor.result(req, monitor.find(req))

        router.add("GET", result[0], get_result, operation=result[1], api_versions=versions)
