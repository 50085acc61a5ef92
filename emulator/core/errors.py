"""ARM errors as typed exceptions: each carries the status and code the real service sends,
so the wire format ``{"error": {"code", "message", ...}}`` is right by construction."""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    status = 400
    code = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.target = target
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidParameter(ArmError):
    code = "InvalidParameter"


class InvalidRequestContent(ArmError):
    code = "InvalidRequestContent"


class MissingApiVersion(ArmError):
    code = "MissingApiVersionParameter"

    def __init__(self) -> None:
        super().__init__("The api-version query parameter (?api-version=) is required for all requests.")


class NoRegisteredProviderFound(ArmError):
    code = "NoRegisteredProviderFound"


class InvalidSubscriptionId(ArmError):
    code = "InvalidSubscriptionId"


class InvalidResourceName(ArmError):
    code = "InvalidResourceName"


class InvalidResourceType(ArmError):
    status = 404
    code = "InvalidResourceType"


class AuthenticationFailed(ArmError):
    status = 401
    code = "AuthenticationFailed"


class SubscriptionNotFound(ArmError):
    status = 404
    code = "SubscriptionNotFound"

    def __init__(self, subscription_id: str):
        super().__init__(f"The subscription '{subscription_id}' could not be found.")


class ResourceGroupNotFound(ArmError):
    status = 404
    code = "ResourceGroupNotFound"

    def __init__(self, name: str):
        super().__init__(f"Resource group '{name}' could not be found.")


class ResourceNotFound(ArmError):
    status = 404
    code = "ResourceNotFound"

    def __init__(self, resource_type: str, name: str, resource_group: str | None = None):
        where = f" under resource group '{resource_group}'" if resource_group else ""
        super().__init__(
            f"The Resource '{resource_type}/{name}'{where} was not found. "
            "For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        )


class NotFound(ArmError):
    """A Compute-style 404 for nested resources (restore points, operations)."""

    status = 404
    code = "NotFound"


class Conflict(ArmError):
    status = 409
    code = "Conflict"


class OperationNotAllowed(ArmError):
    status = 409
    code = "OperationNotAllowed"


class Throttled(ArmError):
    status = 429
    code = "SubscriptionRequestsThrottled"


class InternalServerError(ArmError):
    status = 500
    code = "InternalServerError"


class ServiceUnavailable(ArmError):
    status = 503
    code = "ServiceUnavailable"
