"""Operator use cases that the triggers do not run: the plan (a dry run of the nightly scan) and
the cleanup of orphaned credentials. Typed results, no printing: ``rotator`` shapes the output.

- ``plan`` reads Key Vault's listing once (the same one call per 25 secrets as the nightly scan)
  and decides each tenant with the scanner's own rules. It writes nothing and takes no lease.
  With a rotation window it says when each due tenant would start, as if the scan ran now
  (``rotation.scanner.starts``, the nightly scan's own spreading).
- ``cleanup`` finds credentials of ours (display name starting with ``CREDENTIAL_PREFIX``) that
  the latest Key Vault version does not record, older than ``ORPHAN_GRACE_MINUTES``, on every
  tenant's app, and on apps tagged with our marker that have no Key Vault record at all. A dry
  run reads only; ``apply`` removes them under each tenant's lease, re-reading the record there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from core.clock import to_utc
from core.errors import LeaseBusy, ServiceError
from core.ports import AppInfo, GraphApps, LeaseManager, SecretStore, SecretVersion
from core.record import MARKER, RotationState, TenantRecord, secret_name
from rotation.engine import is_ours
from rotation.scanner import ScanItem, scan, starts
from rotation.windows import Window

# --- plan -------------------------------------------------------------------------------


class NextRun(StrEnum):
    """What the next nightly run would do for a tenant."""

    NOTHING = "nothing"  # not due: the scan leaves it alone
    ROTATE = "rotate"  # due: a new credential is made
    RESUME = "resume"  # stuck mid-rotation: the run picks it up where it stopped
    WAIT = "wait"  # mid-rotation, recently: a run is probably still at it
    REMIND = "remind"  # awaiting confirmation: a reminder (or an escalation) is sent


class Why(StrEnum):
    NOT_DUE = "not-due"
    DUE = "due"
    EXPIRED = "expired"
    STUCK = "stuck"
    IN_PROGRESS = "in-progress"
    AWAITING_CONFIRMATION = "awaiting-confirmation"
    RETIRING = "retiring"


@dataclass(frozen=True)
class PlanItem:
    tenant: str
    state: str
    client_id: str
    key_id: str
    nylas_target: str
    expires_on: datetime | None
    days_left: int | None  # whole days until expiry (negative once expired)
    window_days: int  # the rotation window actually applied (see rotation.engine.is_due)
    due_on: datetime | None  # when the tenant enters its window (None: no expiry, always due)
    state_since: datetime | None
    next_run: NextRun
    why: Why
    explanation: str  # one sentence for a person
    replaces: str = ""  # a v3 tenant's v2 predecessor, while it lives
    replaced_by: str = ""  # a v2 tenant's v3 successor
    starts_at: datetime | None = None  # held for the rotation window: when it starts (None: at the scan)
    not_ready: tuple[str, ...] | None = None  # plan --readiness: what its app misses for production (None: not asked)

    def to_json(self) -> dict[str, object]:
        extra: dict[str, object] = {}
        if self.not_ready is not None:
            extra["ready"] = not self.not_ready
            extra["notReady"] = list(self.not_ready)
        if self.replaces:
            extra["replaces"] = self.replaces
        if self.replaced_by:
            extra["replacedBy"] = self.replaced_by
        return extra | {
            "tenant": self.tenant,
            "state": self.state,
            "clientId": self.client_id,
            "keyId": self.key_id,
            "nylasTarget": self.nylas_target,
            "expiresOn": _iso(self.expires_on),
            "daysLeft": self.days_left,
            "windowDays": self.window_days,
            "dueOn": _iso(self.due_on),
            "stateSince": _iso(self.state_since),
            "nextRun": self.next_run.value,
            "why": self.why.value,
            "startsAt": _iso(self.starts_at),
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Plan:
    now: datetime
    items: list[PlanItem]
    window: Window | None = None  # ROTATION_WINDOW; None: due tenants start at the scan

    def count(self, next_run: NextRun) -> int:
        return sum(1 for i in self.items if i.next_run is next_run)

    def window_json(self) -> dict[str, object] | None:
        if self.window is None:
            return None
        opens, closes = self.window.occurrence(self.now)
        return {"window": self.window.describe(), "opens": _iso(opens), "closes": _iso(closes)}

    def to_json(self) -> dict[str, object]:
        return {
            "now": _iso(self.now),
            "rotationWindow": self.window_json(),
            "tenants": [i.to_json() for i in self.items],
            "counts": {n.value: self.count(n) for n in NextRun},
        }


def window_days(record: TenantRecord) -> int:
    """The rotate-before window ``is_due`` applies: never before half the lifetime has passed."""
    return min(record.rotate_before_days, max(1, record.lifetime_days // 2))


def plan(
    secrets: Iterable[SecretVersion],
    now: datetime,
    *,
    stuck_after: timedelta,
    prefix: str,
    escalate_days: int = 7,
    window: Window | None = None,
    readiness: Mapping[str, tuple[str, ...]] | None = None,
) -> Plan:
    """What the next nightly run would do for every tenant, and why. Pure: decided from the Key
    Vault listing alone, with the scanner's own rules (one secret at a time through ``scan``).
    With a ``window``, each due tenant's start is the one a scan run ``now`` would give it."""
    items: list[PlanItem] = []
    queued: list[ScanItem] = []
    seen: set[str] = set()
    for props in secrets:
        decided = scan([props], now, stuck_after=stuck_after, prefix=prefix)
        record = TenantRecord.from_tags(props.tags)
        if record is None or record.tenant in seen:
            continue
        retiring = record.state is RotationState.RETIRING and props.enabled
        if decided.tenants == 0 and not (retiring and props.name.lower() == secret_name(prefix, record.tenant).lower()):
            continue
        seen.add(record.tenant)
        queued += decided.items
        items.append(_plan_item(props, record, now, decided.items[0].reason if decided.items else "", stuck_after))
    tenants = {i.tenant for i in items}
    successors = {i.replaces: i.tenant for i in items if i.replaces in tenants}
    items = [
        _with_replacement(i, i.replaces if i.replaces in tenants else "", successors.get(i.tenant, "")) for i in items
    ]
    begins = dict(zip((q.tenant for q in queued), starts(queued, now, window), strict=True))
    items = [_with_start(i, begins.get(i.tenant), window) for i in items]
    if readiness is not None:  # tenant -> what its app misses for production (provisioning/readiness.py)
        items = [_with_readiness(i, readiness.get(i.tenant)) for i in items]
    items.sort(key=lambda i: i.tenant)
    return Plan(now, items, window)


def _with_start(item: PlanItem, begins: datetime | None, window: Window | None) -> PlanItem:
    if window is None or item.next_run is not NextRun.ROTATE:
        return item
    if begins is None:
        text = f"; too close to expiry to wait for the rotation window ({window.describe()}): starts at the scan"
        return replace(item, explanation=item.explanation + text)
    text = f"; held for the rotation window: starts {_iso(begins)}"
    return replace(item, starts_at=begins, explanation=item.explanation + text)


def _with_readiness(item: PlanItem, missing: tuple[str, ...] | None) -> PlanItem:
    if missing is None:
        return item
    text = "; not ready for production: " + "; ".join(missing) if missing else "; ready for production"
    return replace(item, not_ready=missing, explanation=item.explanation + text)


def _with_replacement(item: PlanItem, replaces: str, replaced_by: str) -> PlanItem:
    text = item.explanation
    if replaces:
        text += f"; replaces v2 tenant {replaces}: retire it once its users have signed in again"
    if replaced_by:
        text += f"; replaced by v3 tenant {replaced_by}"
    return replace(item, replaces=replaces, replaced_by=replaced_by, explanation=text)


def _plan_item(
    props: SecretVersion, record: TenantRecord, now: datetime, reason: str, stuck_after: timedelta
) -> PlanItem:
    expires = to_utc(props.expires_on) if props.expires_on else None
    since = to_utc(props.updated_on) if props.updated_on else None
    window = window_days(record)
    due_on = expires - timedelta(days=window) if expires else None
    days_left = _days(expires - now) if expires else None
    expired = expires is not None and expires <= now
    if record.state is RotationState.RETIRING:
        next_run, why = NextRun.NOTHING, Why.RETIRING
        text = f"being retired since {_iso(since)}: never rotated again; `retire {record.tenant}` finishes it"
    elif reason == "awaiting-confirmation":
        next_run, why = NextRun.REMIND, Why.AWAITING_CONFIRMATION
        text = (
            "an operator must paste the new secret in the Nylas dashboard and confirm; the next run sends a "
            "reminder (an escalation once the old secret is close to expiry)"
        )
    elif reason == "stuck":
        next_run, why = NextRun.RESUME, Why.STUCK
        text = f"state {record.state.value} since {_iso(since)}, longer than {_hours(stuck_after)}: the run resumes it"
    elif reason == "due" and expired:
        next_run, why = NextRun.ROTATE, Why.EXPIRED
        text = f"expired {-(days_left or 0)} days ago: Nylas can no longer sign users in; rotate now"
    elif reason == "due":
        next_run, why = NextRun.ROTATE, Why.DUE
        text = (
            "no expiry recorded: rotate"
            if expires is None
            else f"expires in {days_left} days, inside its {window}-day window: rotate"
        )
    elif not record.state.settled:
        next_run, why = NextRun.WAIT, Why.IN_PROGRESS
        text = (
            f"state {record.state.value} since {_iso(since)}: a run is probably still at it; "
            f"queued again if it is still there after {_hours(stuck_after)}"
        )
    else:
        next_run, why = NextRun.NOTHING, Why.NOT_DUE
        until = _days(due_on - now) if due_on else 0
        text = f"expires in {days_left} days; enters its {window}-day window in {until} days"
    return PlanItem(
        tenant=record.tenant,
        state=record.state.value,
        client_id=record.client_id,
        key_id=record.key_id,
        nylas_target=record.nylas_target.value,
        expires_on=expires,
        days_left=days_left,
        window_days=window,
        due_on=due_on,
        state_since=since,
        next_run=next_run,
        why=why,
        explanation=text,
        replaces=record.replaces,
    )


# --- cleanup ----------------------------------------------------------------------------


class AppDirectory(Protocol):
    """Apps the service's identity owns that carry a tag (Graph ``tags/any``)."""

    def list_tagged(self, tag: str) -> list[AppInfo]: ...


class Disposition(StrEnum):
    WOULD_REMOVE = "would-remove"  # dry run
    REMOVED = "removed"
    TOO_YOUNG = "too-young"  # within ORPHAN_GRACE_MINUTES: a run may be mid-create
    SKIPPED = "skipped"  # on an unrecorded app, not asked to touch (``include_unrecorded_apps``)
    BUSY = "busy"  # another run holds the tenant's lease
    FAILED = "failed"


@dataclass(frozen=True)
class OrphanCredential:
    tenant: str  # "" when the app names no tenant
    app_object_id: str
    client_id: str
    key_id: str
    display_name: str
    hint: str
    start: datetime | None
    app_recorded: bool  # False: the app has no Key Vault record at all
    disposition: Disposition
    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "appObjectId": self.app_object_id,
            "clientId": self.client_id,
            "keyId": self.key_id,
            "displayName": self.display_name,
            "hint": self.hint,
            "start": _iso(self.start),
            "appRecorded": self.app_recorded,
            "disposition": self.disposition.value,
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class UnrecordedApp:
    """An app tagged with our marker whose tenant has no Key Vault record: a provisioning that
    never finished, or a tenant whose secret was deleted. Never deleted by cleanup."""

    tenant: str
    object_id: str
    app_id: str
    display_name: str
    credentials_of_ours: int

    def to_json(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "appObjectId": self.object_id,
            "clientId": self.app_id,
            "displayName": self.display_name,
            "credentialsOfOurs": self.credentials_of_ours,
        }


@dataclass
class CleanupReport:
    applied: bool
    grace_minutes: int
    tenants: int = 0
    credentials: list[OrphanCredential] = field(default_factory=list)
    unrecorded_apps: list[UnrecordedApp] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # tenants or apps that could not be read

    def count(self, disposition: Disposition) -> int:
        return sum(1 for c in self.credentials if c.disposition is disposition)

    @property
    def failed(self) -> bool:
        return bool(self.errors) or self.count(Disposition.FAILED) > 0

    def to_json(self) -> dict[str, object]:
        return {
            "applied": self.applied,
            "graceMinutes": self.grace_minutes,
            "tenants": self.tenants,
            "credentials": [c.to_json() for c in self.credentials],
            "unrecordedApps": [a.to_json() for a in self.unrecorded_apps],
            "counts": {d.value: self.count(d) for d in Disposition},
            "errors": list(self.errors),
        }


@dataclass
class Cleanup:
    """The cleanup use case over the seams it needs."""

    vault: SecretStore
    graph: GraphApps
    directory: AppDirectory
    leases: LeaseManager
    prefix: str
    grace: timedelta

    def run(self, now: datetime, *, apply: bool, include_unrecorded_apps: bool = False) -> CleanupReport:
        report = CleanupReport(applied=apply, grace_minutes=int(self.grace.total_seconds() // 60))
        records: dict[str, TenantRecord] = {}
        for props in self.vault.list_properties():
            record = TenantRecord.from_tags(props.tags)
            if record is None or not props.enabled:
                continue
            if props.name.lower() != secret_name(self.prefix, record.tenant).lower():
                continue
            records.setdefault(record.tenant, record)
        report.tenants = len(records)
        for tenant in sorted(records):
            self._tenant(report, tenant, records[tenant], now, apply=apply)
        recorded_apps = {r.app_object_id for r in records.values()}
        try:
            tagged = self.directory.list_tagged(MARKER)
        except ServiceError as exc:
            report.errors.append(f"listing apps tagged {MARKER}: {exc.message}")
            tagged = []
        for app in sorted(tagged, key=lambda a: a.object_id):
            if app.object_id in recorded_apps:
                continue
            self._unrecorded_app(report, app, now, apply=apply, include=include_unrecorded_apps)
        return report

    def _tenant(self, report: CleanupReport, tenant: str, listed: TenantRecord, now: datetime, *, apply: bool) -> None:
        if not apply:
            try:
                app = self.graph.get(listed.app_object_id)
            except ServiceError as exc:
                report.errors.append(f"{tenant}: reading app {listed.app_object_id}: {exc.message}")
                return
            recorded = {listed.key_id, listed.previous_key_id} - {""}
            report.credentials += self._orphans(tenant, app, recorded, now, Disposition.WOULD_REMOVE, True)
            return
        try:
            with self.leases.hold(tenant):
                # Under the lease no run is mid-create: re-read the record, it may have moved on.
                latest = self.vault.get(secret_name(self.prefix, tenant))
                record = TenantRecord.from_tags(latest.tags) if latest else None
                if record is None:
                    return
                app = self.graph.get(record.app_object_id)
                recorded = {record.key_id, record.previous_key_id} - {""}
                for orphan in self._orphans(tenant, app, recorded, now, Disposition.REMOVED, True):
                    report.credentials.append(self._remove(orphan))
        except LeaseBusy:
            report.credentials.append(_busy(tenant, listed.app_object_id, listed.client_id, app_recorded=True))
        except ServiceError as exc:
            report.errors.append(f"{tenant}: {exc.message}")

    def _unrecorded_app(
        self, report: CleanupReport, app: AppInfo, now: datetime, *, apply: bool, include: bool
    ) -> None:
        tenant = next((t.split(":", 1)[1] for t in app.tags if t.startswith("tenant:")), "")
        ours = [p for p in app.passwords if is_ours(p.display_name)]
        report.unrecorded_apps.append(UnrecordedApp(tenant, app.object_id, app.app_id, app.display_name, len(ours)))
        if not include or not tenant:
            # Its secret may have been deleted by mistake while Nylas still uses a credential on it:
            # only touched when asked explicitly, and only with a tenant whose lease can be held.
            report.credentials += self._orphans(tenant, app, set(), now, Disposition.SKIPPED, False)
            return
        if not apply:
            report.credentials += self._orphans(tenant, app, set(), now, Disposition.WOULD_REMOVE, False)
            return
        try:
            with self.leases.hold(tenant):
                latest = self.vault.get(secret_name(self.prefix, tenant))
                if latest is not None and TenantRecord.from_tags(latest.tags) is not None:
                    return  # provisioned meanwhile: its own tenant pass owns it next time
                fresh = self.graph.get(app.object_id)
                for orphan in self._orphans(tenant, fresh, set(), now, Disposition.REMOVED, False):
                    report.credentials.append(self._remove(orphan))
        except LeaseBusy:
            report.credentials.append(_busy(tenant, app.object_id, app.app_id, app_recorded=False))
        except ServiceError as exc:
            report.errors.append(f"app {app.app_id}: {exc.message}")

    def _orphans(
        self,
        tenant: str,
        app: AppInfo,
        recorded: set[str],
        now: datetime,
        disposition: Disposition,
        app_recorded: bool,
    ) -> list[OrphanCredential]:
        found = []
        for p in app.passwords:
            if not is_ours(p.display_name) or p.key_id in recorded:
                continue
            young = p.start is not None and now - to_utc(p.start) < self.grace
            found.append(
                OrphanCredential(
                    tenant=tenant,
                    app_object_id=app.object_id,
                    client_id=app.app_id,
                    key_id=p.key_id,
                    display_name=p.display_name,
                    hint=p.hint,
                    start=p.start,
                    app_recorded=app_recorded,
                    disposition=Disposition.TOO_YOUNG if young else disposition,
                )
            )
        return found

    def _remove(self, orphan: OrphanCredential) -> OrphanCredential:
        if orphan.disposition is not Disposition.REMOVED:
            return orphan
        try:
            self.graph.remove_password(orphan.app_object_id, orphan.key_id)
        except ServiceError as exc:
            return _with(orphan, Disposition.FAILED, exc.message)
        return orphan


def _with(orphan: OrphanCredential, disposition: Disposition, error: str) -> OrphanCredential:
    return replace(orphan, disposition=disposition, error=error)


def _busy(tenant: str, object_id: str, client_id: str, *, app_recorded: bool) -> OrphanCredential:
    return OrphanCredential(
        tenant=tenant,
        app_object_id=object_id,
        client_id=client_id,
        key_id="",
        display_name="",
        hint="",
        start=None,
        app_recorded=app_recorded,
        disposition=Disposition.BUSY,
        error="another run holds the tenant's lease; run cleanup again later",
    )


# --- helpers ----------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _days(delta: timedelta) -> int:
    """Whole days, rounded towards minus infinity (an expiry 10 hours ago is -1 day)."""
    return delta.days


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h"


__all__ = [
    "AppDirectory",
    "Cleanup",
    "CleanupReport",
    "Disposition",
    "NextRun",
    "OrphanCredential",
    "Plan",
    "PlanItem",
    "UnrecordedApp",
    "Why",
    "plan",
    "window_days",
]
