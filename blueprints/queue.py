"""Rotate one tenant per queue message, under the tenant's lease.

The queue's retry shape lives in host.json (``extensions.queues``), which cannot carry
comments, so the reasons are here:

- ``maxDequeueCount: 5``: a transient failure (429/5xx from Graph, Key Vault, Entra or Nylas,
  a lost lease) raises and the host hands the message out again; every step of the engine
  resumes, so a retry continues where the last try stopped. Five tries ride out a few minutes
  of outage; after that the host moves the message to ``<queue>-poison``, and
  ``rotation_poison`` alerts a person. ``MAX_DEQUEUE_COUNT`` below must match.
- ``visibilityTimeout: 00:01:00``: the wait before a failed message is visible again. A
  minute outlasts a throttling window (Retry-After) or a blip, and keeps five tries within
  about five minutes, well before a secret in its rotate-before window is at risk.
- ``batchSize: 4`` (with ``newBatchThreshold: 2``, at most 6 at once per instance): each
  rotation makes several Graph writes and waits through Entra's propagation delay; a small
  batch keeps one instance from tripping Graph's per-tenant throttling. Messages for the same
  tenant are serialised by its lease anyway.
- ``messageEncoding: base64``: what ``clients.storage.StorageRotationQueue`` writes.

A request held for the rotation window (``notBefore``, docs/rotation.md#rotation-windows) that
appears before its time (a window more than six days away is reached in hops) is queued again
until then and completed: it never starts early.

Paced requests (apps that sign in personal accounts, rotation/pacing.py) start at their slot: a
request without one, or whose slot fell into a throttling pause, is queued again for a new
slot and completed. A 429 with ``x-ms-throttle-scope`` pauses the whole pace.

Outcomes: "busy" (another run holds the tenant's lease and is rotating it) and "not due" /
"stale" (a duplicate, late or out-of-order request) complete the message quietly. A permanent
failure (the outside system said no; the tenant is gone; the message is unreadable) alerts
once and completes the message, because retrying cannot help.
"""

from __future__ import annotations

import logging

import azure.functions as func

from bootstrap import Services, services
from core.audit import acting_for
from core.errors import BadRequest, DependencyError, GraphThrottled, LeaseBusy, LeaseLost, ServiceError
from core.ports import Alert, RotationRequest, Severity
from core.telemetry import work_on
from rotation.operations import (
    defer_for_pace,
    defer_for_window,
    parse_rotation_message,
    rotate_from_message,
    throttled,
)

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("queue")
CONNECTION = "AzureWebJobsStorage"
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount
UNREADABLE = "(unreadable message)"


def _permanent(exc: ServiceError) -> bool:
    """The outside system said no, the tenant is gone, or the app is not ours: another try reads the
    same answer. Transient dependency errors and a lost lease are worth the host's retry."""
    if isinstance(exc, DependencyError):
        return not exc.transient
    return not isinstance(exc, (LeaseLost, LeaseBusy))


@bp.function_name("rotate_from_queue")
@bp.queue_trigger(arg_name="msg", queue_name="%ROTATION_QUEUE%", connection=CONNECTION)
def rotate_from_queue(msg: func.QueueMessage) -> None:
    svc = services()
    try:
        request = parse_rotation_message(msg.get_body().decode("utf-8", "replace"))
    except BadRequest as exc:
        # Five more tries would read the same bytes: set it aside now.
        svc.deps.notifier.notify(_poison_alert(UNREADABLE, msg.id or "", exc.message))
        log.error("rotation message unreadable", extra={"message_id": msg.id or ""})
        return
    if request.not_before and defer_for_window(svc, request):
        return  # queued again for its window (rotation.windows)
    # Every record and span of this run names the tenant; its writes name who asked for it.
    with work_on(tenant=request.tenant, step=request.reason), acting_for(request.requested_by):
        _rotate(svc, request, msg)


def _rotate(svc: Services, request: RotationRequest, msg: func.QueueMessage) -> None:
    if request.paced and defer_for_pace(svc, request):
        return  # queued again for its slot (rotation.pacing)
    try:
        outcome = rotate_from_message(svc, request)
    except GraphThrottled as exc:
        # Graph's quota, not this call's bad luck: slow every paced rotation, come back after the pause.
        delay = throttled(svc, request, exc.retry_after)
        log.warning(
            "graph throttled the rotation; pace slowed",
            extra={"tenant": request.tenant, "step": "pace", "scope": exc.scope, "delay_seconds": round(delay, 1)},
        )
        if not delay:
            raise  # no pause to wait out: the host's retry
        return
    except ServiceError as exc:
        if not _permanent(exc):
            raise  # transient: the host hands the message out again, then poisons it
        # Permanent: retrying the message cannot help. Say so once, and let the message go.
        svc.deps.notifier.notify(
            Alert(
                kind="rotation-failed",
                tenant=request.tenant,
                severity=Severity.CRITICAL,
                summary=f"Rotation of {request.tenant} stopped: {exc.message}",
                action="The previous secret stays live. Fix the cause (docs/runbook.md#rotation-failed), "
                f"then run `python -m rotator rotate {request.tenant}`.",
                details={"reason": request.reason, "error": exc.code, "message_id": msg.id or ""},
            )
        )
        log.error(
            "rotation failed permanently",
            extra={"tenant": request.tenant, "reason": request.reason, "error": exc.code},
        )
        return
    log.info(
        "rotation %s",
        outcome.result.value,
        extra={"tenant": request.tenant, "result": outcome.result.value, "reason": request.reason},
    )


@bp.function_name("rotation_poison")
@bp.queue_trigger(arg_name="msg", queue_name="%ROTATION_QUEUE%-poison", connection=CONNECTION)
def rotation_poison(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode("utf-8", "replace")
    try:
        tenant = parse_rotation_message(body).tenant
    except BadRequest:
        tenant = UNREADABLE
    services().deps.notifier.notify(
        _poison_alert(tenant, msg.id or "", f"it failed {MAX_DEQUEUE_COUNT} times and was set aside")
    )
    log.error("rotation request poisoned", extra={"tenant": tenant, "message_id": msg.id or ""})


def _poison_alert(tenant: str, message_id: str, why: str) -> Alert:
    if tenant == UNREADABLE:
        summary = f"A rotation request could not be acted on ({why}); its body is not a rotation request"
        action = (
            "Nothing was rotated and no secret changed. Find who writes to the rotation queue; "
            "queue a real request with `POST /api/tenants/{tenant}/rotate` (docs/runbook.md#poison-message)."
        )
    else:
        summary = f"A rotation request for {tenant} could not be completed: {why}"
        action = (
            "The previous secret stays live. Read the function's logs for the tenant, fix the "
            f"dependency, then run `python -m rotator rotate {tenant}` (docs/runbook.md#poison-message)."
        )
    return Alert(
        kind="poison-message",
        tenant=tenant,
        severity=Severity.CRITICAL,
        summary=summary,
        action=action,
        details={"message_id": message_id},
    )
