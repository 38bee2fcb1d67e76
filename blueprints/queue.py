"""Rotate one tenant per queue message, under the tenant's lease.

host.json sets the queue's retry shape: maxDequeueCount 5 (then the message goes
to the poison queue, which alerts), visibilityTimeout 00:01:00 between tries,
batchSize 4 so one instance never hammers Graph with many rotations at once.
"""

from __future__ import annotations

import logging

import azure.functions as func

from clients.factory import services
from clients.interfaces import Alert, Severity
from core.errors import DependencyRejected, TenantNotFound
from rotation.operations import parse_rotation_message, rotate_from_message

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("queue")
CONNECTION = "AzureWebJobsStorage"


@bp.function_name("rotate_from_queue")
@bp.queue_trigger(arg_name="msg", queue_name="%ROTATION_QUEUE%", connection=CONNECTION)
def rotate_from_queue(msg: func.QueueMessage) -> None:
    request = parse_rotation_message(msg.get_body().decode("utf-8", "replace"))
    svc = services()
    try:
        outcome = rotate_from_message(svc, request)
    except (DependencyRejected, TenantNotFound) as exc:
        # Permanent: retrying the message cannot help. Say so once, and let the message go.
        svc.deps.notifier.notify(
            Alert(
                kind="rotation-failed",
                tenant=request.tenant,
                severity=Severity.CRITICAL,
                summary=f"Rotation of {request.tenant} stopped: {exc.message}",
                action="The previous secret stays live. Fix the cause (docs/runbook.md#rotation-failed), "
                f"then run `python -m rotator rotate {request.tenant}`.",
                details={"reason": request.reason},
            )
        )
        log.error("rotation failed permanently", extra={"tenant": request.tenant, "reason": request.reason})
        return
    # Transient errors propagate: the queue retries the message, then poisons it.
    log.info("rotation %s", outcome.result.value, extra={"tenant": request.tenant, "result": outcome.result.value})


@bp.function_name("rotation_poison")
@bp.queue_trigger(arg_name="msg", queue_name="%ROTATION_QUEUE%-poison", connection=CONNECTION)
def rotation_poison(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode("utf-8", "replace")
    try:
        tenant = parse_rotation_message(body).tenant
    except Exception:
        tenant = "(unreadable message)"
    services().deps.notifier.notify(
        Alert(
            kind="poison-message",
            tenant=tenant,
            severity=Severity.CRITICAL,
            summary=f"A rotation request for {tenant} failed 5 times and was set aside",
            action="The previous secret stays live. Read the function's logs for the tenant, fix the "
            f"dependency, then run `python -m rotator rotate {tenant}` (docs/runbook.md#poison-message).",
            details={"message_id": msg.id or ""},
        )
    )
