"""What each trigger asks of the service, as plain functions over ``Services``.

The blueprints parse input, call one of these, and shape output; the operator
CLI calls the same ones, so a function run and a CLI run cannot disagree.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from core.audit import current_caller
from core.errors import BadRequest, TenantNotFound
from core.ports import Alert, RotationRequest, Severity
from core.record import Audience, TenantRecord, secret_name
from rotation.engine import Outcome
from rotation.events import EXPIRED, HANDLED, NEAR_EXPIRY, KeyVaultEvent
from rotation.pacing import DEFAULT_PAUSE_SECONDS, EARLY_TOLERANCE_SECONDS, interval_seconds
from rotation.scanner import ScanReport, scan, starts
from rotation.windows import parse as parse_window

if TYPE_CHECKING:
    from bootstrap import Services

log = logging.getLogger("rotation.operations")
# A storage queue hides a message for 7 days at most, and one that lives the default 7 days would
# expire as it appears: a rotation held for a window further away than this gets there in hops.
MAX_QUEUE_DELAY_SECONDS = 6 * 24 * 3600.0


def scan_and_queue(services: Services) -> ScanReport:
    """The nightly run: list Key Vault once, queue one message per tenant that needs a run, and log
    one summary line. A failure part-way raises (the timer's retry policy runs the scan again); the
    messages already sent are then sent twice, which the engine's own due check makes harmless.

    With a rotation window (``ROTATION_WINDOW``), due tenants are held for it and spread over it
    (``rotation.scanner.starts``); every other request starts when queued, as without one."""
    deps = services.deps
    report = scan(
        deps.vault.list_properties(),
        deps.clock.now(),
        stuck_after=timedelta(hours=services.settings.stuck_after_hours),
        prefix=services.settings.secret_prefix,
    )
    now = deps.clock.now()
    begins = starts(report.items, now, parse_window(services.settings.rotation_window))
    paced = [item for item, begin in zip(report.items, begins, strict=True) if item.paced and begin is None]
    slots = services.pace.reserve(len(paced), interval_seconds(services.settings)) if paced else []
    for item, begin in zip(report.items, begins, strict=True):
        request = RotationRequest(item.tenant, item.reason, item.version, paced=item.paced)
        if begin is not None:
            # Held for the window. A paced one takes its Graph slot when it appears (defer_for_pace),
            # so it starts at the later of the two.
            request = replace(request, not_before=begin.timestamp())
            report.held += 1
        elif item.paced:
            request = replace(request, slot=slots.pop(0))
        services.queue.send(request, delay_seconds=queue_delay(request, now.timestamp()))
    # Not only Event Grid says so: should its subscription be missing, the nightly scan still alerts.
    for tenant in report.expired:
        secret = secret_name(services.settings.secret_prefix, tenant)
        services.deps.notifier.notify(expired_alert(tenant, {"key_vault_secret": secret}))
    log.info(report.summary(), extra={"step": "scan", **report.counts()})
    return report


@dataclass(frozen=True)
class EventDecision:
    action: str  # queued | ignored
    why: str
    tenant: str = ""


def handle_key_vault_event(services: Services, event: KeyVaultEvent) -> EventDecision:
    prefix = services.settings.secret_prefix
    if event.event_type not in HANDLED:
        return _ignored(event, f"event type {event.event_type} is not acted on")
    if not event.secret_name.lower().startswith(prefix.lower()):
        return _ignored(event, "secret is not one of ours (name prefix)")
    latest = services.deps.vault.get(event.secret_name)
    record = TenantRecord.from_tags(latest.tags) if latest else None
    if latest is None or record is None:
        return _ignored(event, "secret is not a tenant record of ours")
    if latest.name.lower() != secret_name(prefix, record.tenant).lower():
        return _ignored(event, "secret carries a tenant record but is not that tenant's secret")
    if event.version and event.version.lower() != latest.version.lower():
        return _ignored(event, f"event version {event.version} is no longer the latest ({latest.version})")
    if event.event_type == EXPIRED:
        services.deps.notifier.notify(
            expired_alert(
                record.tenant,
                {"client_id": record.client_id, "key_id": record.key_id, "key_vault_secret": latest.name},
            )
        )
    reason = "expired-event" if event.event_type == EXPIRED else "near-expiry-event"
    services.queue.send(RotationRequest(record.tenant, reason, latest.version, paced=is_paced(record)))
    log.info("key vault event queued a rotation", extra={"tenant": record.tenant, "step": "event", "reason": reason})
    return EventDecision("queued", reason, record.tenant)


def expired_alert(tenant: str, details: dict[str, str]) -> Alert:
    return Alert(
        kind="secret-expired",
        tenant=tenant,
        severity=Severity.CRITICAL,
        summary=f"The client secret of {tenant}"
        + (f" (key {details['key_id']})" if details.get("key_id") else "")
        + " has expired: Nylas can no longer sign users in",
        action="A rotation is queued now. If it does not settle within the hour, follow "
        "docs/runbook.md#secret-expired.",
        details=details,
    )


def _ignored(event: KeyVaultEvent, why: str) -> EventDecision:
    log.info("key vault event ignored: %s", why, extra={"secret": event.secret_name, "step": "event"})
    return EventDecision("ignored", why)


def parse_rotation_message(body: str) -> RotationRequest:
    try:
        data = json.loads(body)
        request = RotationRequest(
            tenant=str(data["tenant"]),
            reason=str(data.get("reason", "")),
            version=str(data.get("version", "")),
            force=bool(data.get("force", False)),
            paced=bool(data.get("paced", False)),
            slot=float(data.get("slot", 0.0)),
            not_before=float(data.get("notBefore", 0.0)),
            scopes=tuple(str(s) for s in data.get("scopes", ())),
            requested_by=str(data.get("requestedBy", ""))[:256],
        )
    except (ValueError, KeyError, TypeError):
        raise BadRequest("rotation message is not the JSON this service writes", field="body") from None
    if not math.isfinite(request.not_before):
        raise BadRequest("rotation message is not the JSON this service writes", field="body")
    return request


def is_paced(record: TenantRecord) -> bool:
    return Audience(record.audience).allows_personal


def queue_delay(request: RotationRequest, now: float) -> float:
    """A request's visibility delay: until its window start or Graph slot, at most ``MAX_QUEUE_DELAY_SECONDS``."""
    return min(max(0.0, request.not_before - now, request.slot - now), MAX_QUEUE_DELAY_SECONDS)


def defer_for_window(services: Services, request: RotationRequest) -> float:
    """A request held for the rotation window never starts before its time: one that appears early
    (a window more than ``MAX_QUEUE_DELAY_SECONDS`` away is reached in hops) goes back to the queue
    until then. Returns the wait (0: start now)."""
    wait = request.not_before - services.deps.clock.now().timestamp()
    if wait <= EARLY_TOLERANCE_SECONDS:
        return 0.0
    services.queue.send(request, delay_seconds=min(wait, MAX_QUEUE_DELAY_SECONDS))
    log.info(
        "rotation held for its window",
        extra={"tenant": request.tenant, "step": "window", "delay_seconds": round(wait, 1)},
    )
    return wait


def defer_for_pace(services: Services, request: RotationRequest) -> float:
    """A paced request that has no slot yet, or whose slot fell inside a throttling pause, takes a
    new slot and goes back to the queue until then. Returns the delay (0: start now)."""
    now = services.deps.clock.now().timestamp()
    if request.slot and request.slot >= services.pace.paused_until():
        return 0.0
    (slot,) = services.pace.reserve(1, interval_seconds(services.settings))
    if slot - now <= EARLY_TOLERANCE_SECONDS:
        return 0.0
    services.queue.send(replace(request, slot=slot), delay_seconds=slot - now)
    log.info(
        "paced rotation deferred",
        extra={"tenant": request.tenant, "step": "pace", "delay_seconds": round(slot - now, 1)},
    )
    return slot - now


def throttled(services: Services, request: RotationRequest, retry_after: float | None) -> float:
    """Graph's quota said stop: pause every paced start, and queue this request again after the pause."""
    services.pace.slow_down(retry_after or DEFAULT_PAUSE_SECONDS)
    return defer_for_pace(services, replace(request, paced=True, slot=0.0))


def rotate_from_message(services: Services, request: RotationRequest) -> Outcome:
    # Every request carries the version its sender saw: once a rotation has written a newer
    # one, a duplicate, late or out-of-order request is stale and changes nothing.
    return services.engine.rotate(
        request.tenant, force=request.force, seen_version=request.version, reason=request.reason, scopes=request.scopes
    )


def queue_rotation(services: Services, tenant: str) -> RotationRequest:
    latest = services.deps.vault.get(secret_name(services.settings.secret_prefix, tenant))
    if latest is None or TenantRecord.from_tags(latest.tags) is None:
        raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
    record = TenantRecord.from_tags(latest.tags)
    assert record is not None
    request = RotationRequest(
        tenant, "on-demand", latest.version, force=True, paced=is_paced(record), requested_by=current_caller()
    )
    services.queue.send(request)
    return request


__all__ = [
    "EXPIRED",
    "NEAR_EXPIRY",
    "EventDecision",
    "defer_for_window",
    "handle_key_vault_event",
    "parse_rotation_message",
    "queue_rotation",
    "rotate_from_message",
    "scan_and_queue",
]
