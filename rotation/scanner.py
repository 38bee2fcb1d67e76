"""The nightly scan: which tenants need a rotation run, from Key Vault properties alone.

One paged listing (25 per call, Key Vault's maximum), no GET per secret: the
latest version's tags and expiry are in the listing. Key Vault's listing names no
version (ids are ``/secrets/{name}``), so ``ScanItem.version`` is empty for a real
vault; the engine re-checks whether the tenant is due under its lease, which is
what makes a duplicate request harmless.

With a rotation window (``ROTATION_WINDOW``, rotation/windows.py) ``starts`` says when each
queued item may begin: the nightly scan and ``plan`` both ask it, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.clock import to_utc
from core.ports import SecretVersion
from core.record import Audience, RotationState, TenantRecord, secret_name
from rotation.engine import is_due
from rotation.windows import Window, must_not_wait


@dataclass(frozen=True)
class ScanItem:
    tenant: str
    reason: str  # due | stuck | awaiting-confirmation
    version: str
    expires_on: datetime | None
    state: str
    paced: bool = False  # an app that signs in personal accounts: its Graph writes are paced


@dataclass
class ScanReport:
    seen: int = 0  # secrets listed
    tenants: int = 0  # of them, tenant records of ours
    healthy: int = 0
    items: list[ScanItem] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    held: int = 0  # of the items, due tenants held for the rotation window (set by the fan-out)
    # every tenant seen: (target, state, expires_on), for the days-left gauge (core.telemetry)
    expiry: dict[str, tuple[str, str, datetime | None]] = field(default_factory=dict)

    def count(self, reason: str) -> int:
        return sum(1 for item in self.items if item.reason == reason)

    def counts(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "tenants": self.tenants,
            "healthy": self.healthy,
            "due": self.count("due"),
            "stuck": self.count("stuck"),
            "awaiting_confirmation": self.count("awaiting-confirmation"),
            "expired": len(self.expired),
            "queued": len(self.items),
            "held_for_window": self.held,
        }

    def summary(self) -> str:
        return (
            f"scan: {self.seen} secrets, {self.tenants} tenants, {self.healthy} healthy, "
            f"{self.count('due')} due, {self.count('stuck')} stuck, "
            f"{self.count('awaiting-confirmation')} awaiting confirmation, {len(self.expired)} expired, "
            f"{len(self.items)} queued" + (f" ({self.held} held for the rotation window)" if self.held else "")
        )


def scan(
    secrets: Iterable[SecretVersion], now: datetime, *, stuck_after: timedelta, prefix: str | None = None
) -> ScanReport:
    """Which tenants need a run. With ``prefix``, a secret counts only when its name is the tenant's
    own secret name (a copy of our tags under another name is not a tenant); a tenant is reported once."""
    report = ScanReport()
    seen_tenants: set[str] = set()
    for props in secrets:
        report.seen += 1
        record = TenantRecord.from_tags(props.tags)
        if record is None or not props.enabled or record.tenant in seen_tenants:
            continue
        if prefix is not None and props.name.lower() != secret_name(prefix, record.tenant).lower():
            continue
        seen_tenants.add(record.tenant)
        if record.state is RotationState.RETIRING:
            continue  # no rotation ever again; `retire` (DELETE) resumes it, not the scan
        report.tenants += 1
        report.expiry[record.tenant] = (record.nylas_target.value, record.state.value, props.expires_on)
        if props.expires_on and to_utc(props.expires_on) <= now:
            report.expired.append(record.tenant)
        since = to_utc(props.updated_on) if props.updated_on else now
        if record.state is RotationState.AWAITING_CONFIRMATION:
            reason = "awaiting-confirmation"  # queued every night: it reminds, then escalates
        elif not record.state.settled:
            if now - since < stuck_after:
                report.healthy += 1  # a run is probably still at it
                continue
            reason = "stuck"
        elif is_due(record, props.expires_on, now):
            reason = "due"
        else:
            report.healthy += 1
            continue
        paced = Audience(record.audience).allows_personal
        report.items.append(ScanItem(record.tenant, reason, props.version, props.expires_on, record.state.value, paced))
    return report


def starts(items: Sequence[ScanItem], now: datetime, window: Window | None) -> list[datetime | None]:
    """When each item's run may start: None for at once (as it is queued), else a time in the window.

    Only ``due`` tenants wait for the window; they are spread over it soonest expiry first (no
    expiry last, then in listing order). A due tenant whose secret would expire before the window
    closes plus ``URGENT_MARGIN`` does not wait. A stuck rotation is resumed at once: it began
    already, and holds two live secrets (on a personal-account app, the most it may) until it
    finishes. Awaiting-confirmation runs only remind a person: at once too."""
    out: list[datetime | None] = [None] * len(items)
    if window is None:
        return out
    _, closes = window.occurrence(now)
    held = [i for i, item in enumerate(items) if item.reason == "due" and not must_not_wait(item.expires_on, closes)]
    held.sort(key=lambda i: (items[i].expires_on is None, to_utc(items[i].expires_on or now)))
    for i, at in zip(held, window.slots(len(held), now), strict=True):
        out[i] = at
    return out
