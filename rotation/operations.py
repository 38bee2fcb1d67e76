"""What each trigger asks of the service, as plain functions over ``Services``.

The blueprints parse input, call one of these, and shape output; the operator
CLI calls the same ones, so a function run and a CLI run cannot disagree.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from core.errors import BadRequest, TenantNotFound
from core.ports import Alert, RotationRequest, Severity
from core.record import Audience, TenantRecord, secret_name
from rotation.engine import Outcome
from rotation.events import EXPIRED, HANDLED, NEAR_EXPIRY, KeyVaultEvent
from rotation.pacing import DEFAULT_PAUSE_SECONDS, EARLY_TOLERANCE_SECONDS, interval_seconds
from rotation.scanner import ScanReport, scan

if TYPE_CHECKING:
    from bootstrap import Services

log = logging.getLogger("rotation.operations")


def scan_and_queue(services: Services) -> ScanReport:
    """The nightly run: list Key Vault once, queue one message per tenant that needs a run, and log
    one summary line. A failure part-way raises (the timer's retry policy runs the scan again); the
    messages already sent are then sent twice, which the engine's own due check makes harmless."""
    deps = services.deps
    report = scan(
        deps.vault.list_properties(),
        deps.clock.now(),
        stuck_after=timedelta(hours=services.settings.stuck_after_hours),
        prefix=services.settings.secret_prefix,
    )
    paced = [item for item in report.items if item.paced]
    slots = services.pace.reserve(len(paced), interval_seconds(services.settings)) if paced else []
    now = deps.clock.now().timestamp()
    for item in report.items:
        if item.paced:
            slot = slots.pop(0)
            services.queue.send(
                RotationRequest(item.tenant, item.reason, item.version, paced=True, slot=slot),
                delay_seconds=max(0.0, slot - now),
            )
        else:
            services.queue.send(RotationRequest(item.tenant, item.reason, item.version))
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
        )
    except (ValueError, KeyError, TypeError):
        raise BadRequest("rotation message is not the JSON this service writes", field="body") from None
    return request


def is_paced(record: TenantRecord) -> bool:
    return Audience(record.audience).allows_personal


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
        request.tenant, force=request.force, seen_version=request.version, reason=request.reason
    )


def queue_rotation(services: Services, tenant: str) -> RotationRequest:
    latest = services.deps.vault.get(secret_name(services.settings.secret_prefix, tenant))
    if latest is None or TenantRecord.from_tags(latest.tags) is None:
        raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
    record = TenantRecord.from_tags(latest.tags)
    assert record is not None
    request = RotationRequest(tenant, "on-demand", latest.version, force=True, paced=is_paced(record))
    services.queue.send(request)
    return request


__all__ = [
    "EXPIRED",
    "NEAR_EXPIRY",
    "EventDecision",
    "handle_key_vault_event",
    "parse_rotation_message",
    "queue_rotation",
    "rotate_from_message",
    "scan_and_queue",
]
