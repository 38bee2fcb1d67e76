"""Errors to HTTP, in one place: every 4xx/5xx body is {"error":{"code","message","field",...}}.

Refused callers (401 ``unauthorized``, 403 ``forbidden``) are answered by blueprints/caller_auth.py
through ``error_response``, with ``WWW-Authenticate``."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from core.errors import (
    BadRequest,
    Conflict,
    DependencyRejected,
    DependencyUnavailable,
    LeaseBusy,
    LeaseLost,
    NotOwned,
    PayloadTooLarge,
    ServiceError,
    TenantNotFound,
    UnsupportedMediaType,
)
from core.settings import SettingsError

log = logging.getLogger("http")

RESUME_HINT = "Nothing was lost: sending the same request again resumes where this one stopped."


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, indent=2, default=str), status_code=status, mimetype="application/json", headers=headers
    )


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> func.HttpResponse:
    """``{"error": {...}}``; ``headers`` beside the ones the status implies (Retry-After on 429/503;
    the caller gives WWW-Authenticate on 401/403, blueprints/caller_auth.py)."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    error.update(extra)
    sent = {"Retry-After": "30"} if status in (429, 503) else {}
    sent.update(headers or {})
    return json_response({"error": error}, status, sent or None)


def status_of(exc: ServiceError) -> int:
    table: list[tuple[type[ServiceError], int]] = [
        (PayloadTooLarge, 413),
        (UnsupportedMediaType, 415),
        (BadRequest, 400),
        (NotOwned, 403),
        (TenantNotFound, 404),
        (Conflict, 409),
        (LeaseBusy, 409),
        (LeaseLost, 503),
        (DependencyUnavailable, 503),
        (DependencyRejected, 502),
    ]
    for kind, status in table:
        if isinstance(exc, kind):
            return status
    return 500


def to_response(exc: Exception) -> func.HttpResponse:
    if isinstance(exc, (DependencyUnavailable, DependencyRejected)):
        log.warning("dependency failed: %s", exc.message, extra={"dependency": exc.dependency})
        return error_response(
            status_of(exc),
            exc.code,
            exc.message,
            exc.field,
            dependency=exc.dependency,
            retryable=exc.transient,
            hint=RESUME_HINT if exc.transient else "Fix the cause named in message, then send the request again.",
        )
    if isinstance(exc, LeaseBusy):
        return error_response(409, exc.code, exc.message, exc.field, retryable=True, hint="Try again in a minute.")
    if isinstance(exc, ServiceError):
        return error_response(status_of(exc), exc.code, exc.message, exc.field)
    if isinstance(exc, SettingsError):
        log.error("service misconfigured: %s", exc)
        return error_response(503, "misconfigured", f"the service is misconfigured: {exc}", None)
    # Unknown: log the type only (an SDK's text could quote a request), answer a generic 500.
    log.exception("unexpected error: %s", exc.__class__.__name__)
    return error_response(500, "internal", "unexpected error; see the service's logs", None)
