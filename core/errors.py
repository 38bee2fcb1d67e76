"""Errors as types. ``blueprints.http_errors`` maps them to HTTP status in one place.

No message built here may carry a secret value: callers pass names, ids and hints.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error this service raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(ServiceError):
    code = "invalid_request"


class PayloadTooLarge(BadRequest):
    code = "payload_too_large"


class UnsupportedMediaType(BadRequest):
    code = "unsupported_media_type"


class TenantNotFound(ServiceError):
    code = "tenant_not_found"


class Conflict(ServiceError):
    code = "conflict"


class NothingToConfirm(Conflict):
    code = "nothing_to_confirm"


class NotOwned(ServiceError):
    """The service's identity is not an owner of an app it was asked to adopt or change."""

    code = "app_not_owned"


class DependencyError(ServiceError):
    """An outside system failed. ``transient`` says whether a retry can succeed."""

    code = "dependency_failed"

    def __init__(
        self,
        dependency: str,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        transient: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{dependency}: {message}")
        self.dependency = dependency
        self.status = status
        self.error_code = error_code
        self.transient = transient
        self.retry_after = retry_after


class DependencyUnavailable(DependencyError):
    """Transient: 429, 5xx, timeouts, dropped connections. A retry resumes."""

    code = "dependency_unavailable"


class DependencyRejected(DependencyError):
    """Permanent: the outside system said no (400/401/403/404 that is not replication lag)."""

    code = "dependency_rejected"

    def __init__(self, dependency: str, message: str, **kwargs: object) -> None:
        kwargs["transient"] = False
        super().__init__(dependency, message, **kwargs)  # type: ignore[arg-type]


class NotFoundYet(DependencyUnavailable):
    """Graph's replication 404 right after a create: retried, unlike other 404s."""

    code = "replication_pending"


class PolicyRejectedLifetime(DependencyRejected):
    """A tenant app-management policy caps the secret lifetime."""

    code = "lifetime_rejected_by_policy"


class NylasStateUnknown(DependencyUnavailable):
    """A write to Nylas was sent and nothing since says whether it landed (a 5xx, a lost answer, or a
    failed read-back): Nylas may hold the new secret or the old one. Nothing is revoked until a
    later run knows."""

    code = "nylas_state_unknown"


class TooManyAppPasswords(DependencyRejected):
    """Graph refuses a third client secret on an app that signs in personal accounts (world-facts §3)."""

    code = "too_many_app_passwords"


class GraphThrottled(DependencyUnavailable):
    """Graph's 429 with ``x-ms-throttle-scope``: a tenant- or app-wide quota, not one call's bad luck."""

    code = "graph_throttled"

    def __init__(self, dependency: str, message: str, *, scope: str = "", **kwargs: object) -> None:
        super().__init__(dependency, message, **kwargs)  # type: ignore[arg-type]
        self.scope = scope


class LeaseBusy(ServiceError):
    """Another run holds this tenant's lease: not a failure, nothing was done."""

    code = "busy"


class LeaseLost(ServiceError):
    """Our lease expired or was broken mid-run: stop before the next write."""

    code = "lease_lost"
