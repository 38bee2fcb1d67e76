"""The rotation state machine: create, test, set, finish; re-entrant at every step.

Read docs/rotation.md first: it has the diagram and the resume rule of every state.
The record is the latest Key Vault version's tags (core.record). Every step first
looks at the record and at the app's actual credentials, and does nothing that is
already done, so a run stopped anywhere settles on the next run.

Order is the safety argument:
  1. create  addPassword, then at once store the secret text as a new version (pending)
  2. test    a client-credentials token with the new secret, through propagation
  3. set     push to Nylas (manual: park in awaiting-confirmation)
  4. finish  removePassword(previous), then mark the version current
Nothing is revoked before its replacement is stored, verified and pushed.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from core.audit import keep_requester
from core.clock import Clock, Sleep, to_utc
from core.errors import (
    DependencyError,
    DependencyRejected,
    LeaseBusy,
    LeaseLost,
    NothingToConfirm,
    NylasStateUnknown,
    PolicyRejectedLifetime,
    TenantNotFound,
    TooManyAppPasswords,
)
from core.ports import (
    MAX_PERSONAL_APP_PASSWORDS,
    Alert,
    AppInfo,
    GraphApps,
    LeaseManager,
    NewPassword,
    Notifier,
    NylasApp,
    NylasGateway,
    PasswordInfo,
    PushStatus,
    SecretStore,
    SecretVersion,
    Severity,
    TokenVerifier,
    VerifyOutcome,
)
from core.record import CREDENTIAL_PREFIX, NylasTarget, RotationState, TenantRecord, secret_name
from core.telemetry import annotate, telemetry, tracer, work_on

log = logging.getLogger("rotation")

CONTENT_TYPE = "application/vnd.nylas-entra-rotator.client-secret"
# The reason of provisioning's queued follow-up. It finishes a tenant that is on its way and
# nothing more: a duplicate (a repeated POST re-queues it) that finds the tenant settled must not
# start a rotation. (One that finds it awaiting confirmation reminds, as a retry after a crash
# between the state write and the first alert must.)
PROVISION_FOLLOW_UP = "provision"
# When a tenant policy refuses a lifetime (Graph never says the maximum), try these, longest first.
LIFETIME_LADDER_DAYS = (365, 180, 90, 60, 30, 14, 7)


class Result(StrEnum):
    NOT_DUE = "not-due"
    STALE_EVENT = "stale-event"
    ROTATED = "rotated"
    AWAITING_CONFIRMATION = "awaiting-confirmation"
    ROLLED_BACK = "rolled-back"
    REFUSED = "refused"  # nothing written: the app has no room for a new secret (a person must act)
    NYLAS_REFUSED = "nylas-refused"  # Nylas said no to the push: both secrets stay, the record stays pending
    RETIRING = "retiring"  # the tenant is being retired: never rotated again
    BUSY = "busy"


@dataclass(frozen=True)
class Outcome:
    tenant: str
    result: Result
    key_id: str = ""
    previous_key_id: str = ""
    expires_on: datetime | None = None
    message: str = ""
    nylas_credential_id: str = ""  # v3-credential: the connector credential that holds the secret


@dataclass(frozen=True)
class Policy:
    tenant_id: str = ""
    secret_prefix: str = "nylas-entra-"
    verify_budget_seconds: float = 300.0
    manual_escalate_days: int = 7
    stuck_after_hours: int = 6


@dataclass
class Dependencies:
    graph: GraphApps
    vault: SecretStore
    verifier: TokenVerifier
    nylas: NylasGateway
    leases: LeaseManager
    notifier: Notifier
    clock: Clock
    sleep: Sleep


def is_ours(display_name: str | None) -> bool:
    """Our credentials are named exactly "<prefix> <rotation id>", the id being 12 lowercase hex
    digits: a name that only looks alike (say "nylas-entra-rotator-backup" or "nylas-entra-rotator
    manual copy", added by a person) is not ours and is never touched."""
    return bool(OUR_CREDENTIAL_NAME.fullmatch(display_name or ""))


OUR_CREDENTIAL_NAME = re.compile(re.escape(CREDENTIAL_PREFIX) + r" [0-9a-f]{12}")


def new_rotation_id() -> str:
    return uuid.uuid4().hex[:12]


def credential_display_name(rotation_id: str) -> str:
    return f"{CREDENTIAL_PREFIX} {rotation_id}"


def is_due(record: TenantRecord, expires_on: datetime | None, now: datetime) -> bool:
    if expires_on is None:
        return True
    # A lifetime clamped by policy to near the window would make every fresh secret due at once
    # (and Key Vault re-fires NearExpiry): never start before half the lifetime has passed.
    window = min(record.rotate_before_days, max(1, record.lifetime_days // 2))
    return to_utc(expires_on) - now <= timedelta(days=window)


class RotationEngine:
    def __init__(self, deps: Dependencies, policy: Policy) -> None:
        self.deps = deps
        self.policy = policy

    # --- entry points ------------------------------------------------------------------

    def rotate(
        self,
        tenant: str,
        *,
        force: bool = False,
        seen_version: str = "",
        reason: str = "",
        scopes: tuple[str, ...] = (),
    ) -> Outcome:
        """Drive one tenant's rotation as far as it can go now. Safe to call at any time, any number of
        times. ``scopes``: provisioning's follow-up, for a Nylas connector it may create."""

        def run() -> Outcome:
            try:
                with self.deps.leases.hold(tenant):
                    return self._advance(
                        tenant,
                        force=force,
                        seen_version=seen_version,
                        confirm=False,
                        scopes=scopes,
                        finishing_only=reason == PROVISION_FOLLOW_UP,
                    )
            except LeaseBusy:
                log.info("rotation busy", extra={"tenant": tenant, "step": "lease"})
                return Outcome(tenant, Result.BUSY, message="another run holds this tenant's lease")

        return self.measured(tenant, reason or ("forced" if force else "due"), run)

    def confirm(self, tenant: str) -> Outcome:
        """An operator says the manual Nylas target now holds the new secret."""

        def run() -> Outcome:
            with self.deps.leases.hold(tenant):
                loaded = self._load(tenant)
                if loaded[1].state is not RotationState.AWAITING_CONFIRMATION:
                    raise NothingToConfirm(
                        f"tenant {tenant} has no rotation awaiting confirmation (state {loaded[1].state})",
                        field="tenant",
                    )
                return self._advance(tenant, force=False, seen_version="", confirm=True, loaded=loaded)

        return self.measured(tenant, "confirm", run)

    def advance_from_record(
        self,
        tenant: str,
        *,
        loaded: tuple[SecretVersion, TenantRecord] | None = None,
        app: AppInfo | None = None,
        nylas_credential: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> Outcome:
        """Provisioning hands over here, already holding the lease, once the first version is stored.
        What it just wrote or read (the version, the app, the Nylas credential) it passes along, so
        nothing is read back that this process already knows; ``scopes`` are what a Nylas connector
        made now asks for."""
        return self.measured(
            tenant,
            PROVISION_FOLLOW_UP,
            lambda: self._advance(
                tenant,
                force=False,
                seen_version="",
                confirm=False,
                loaded=loaded,
                app=app,
                known=nylas_credential,
                scopes=scopes,
            ),
        )

    def measured(self, tenant: str, trigger: str, run: Callable[[], Outcome]) -> Outcome:
        """Run one attempt inside a span and the tenant's log context, and count it: the outcome (or
        ``failed`` when it raised), by target and trigger, and how long it took on the service's clock
        (verification waits included)."""
        started = self.deps.clock.now()
        with work_on(tenant=tenant, step="rotate") as context, tracer().start_as_current_span("rotation") as span:
            span.set_attribute("rotator.trigger", trigger)
            outcome_name = "failed"
            try:
                outcome = run()
                outcome_name = outcome.result.value
                if outcome.expires_on is not None:
                    days = (to_utc(outcome.expires_on) - self.deps.clock.now()).total_seconds() / 86400
                    telemetry().days_left(
                        tenant=tenant, target=context.get("target", "unknown"), state=outcome.result.value, days=days
                    )
                return outcome
            except Exception as exc:
                # Transient (a 429/5xx, a lost lease): the queue tries again and poisons the message
                # after five tries, which alerts on its own. Only what retrying cannot fix is "failed".
                if (isinstance(exc, DependencyError) and exc.transient) or isinstance(exc, (LeaseLost, LeaseBusy)):
                    outcome_name = "interrupted"
                raise
            finally:
                target = context.get("target", "unknown")
                span.set_attribute("rotator.target", target)
                span.set_attribute("rotator.outcome", outcome_name)
                seconds = (self.deps.clock.now() - started).total_seconds()
                telemetry().rotation(
                    tenant=tenant, target=target, outcome=outcome_name, trigger=trigger, seconds=seconds
                )

    # --- the machine -------------------------------------------------------------------

    def _load(self, tenant: str) -> tuple[SecretVersion, TenantRecord]:
        latest = self.deps.vault.get(secret_name(self.policy.secret_prefix, tenant))
        record = TenantRecord.from_tags(latest.tags) if latest else None
        if latest is None or record is None:
            raise TenantNotFound(f"tenant {tenant} is not provisioned (no Key Vault record)", field="tenant")
        return latest, record

    def _advance(
        self,
        tenant: str,
        *,
        force: bool,
        seen_version: str,
        confirm: bool,
        loaded: tuple[SecretVersion, TenantRecord] | None = None,
        app: AppInfo | None = None,
        known: str | None = None,
        scopes: tuple[str, ...] = (),
        finishing_only: bool = False,
    ) -> Outcome:
        latest, record = loaded or self._load(tenant)
        annotate(target=record.nylas_target.value)
        if record.state is RotationState.RETIRING:
            return Outcome(tenant, Result.RETIRING, record.key_id, message="the tenant is being retired")
        if finishing_only and record.state.settled:
            return Outcome(
                tenant, Result.NOT_DUE, record.key_id, expires_on=latest.expires_on, message="provisioning had finished"
            )
        if seen_version and seen_version != latest.version and record.state is not RotationState.PENDING:
            # A request about a version that is no longer the latest: someone already rotated (or
            # already parked it for confirmation: a duplicate must not send a second reminder).
            return Outcome(tenant, Result.STALE_EVENT, record.key_id, message="event version is no longer latest")
        app = app or self.deps.graph.get(record.app_object_id)
        now = self.deps.clock.now()

        if record.state.settled:
            removed = self.remove_orphans(app, recorded={record.key_id})
            if not force and not is_due(record, latest.expires_on, now):
                return Outcome(tenant, Result.NOT_DUE, record.key_id, expires_on=latest.expires_on)
            others = [p for p in app.passwords if p.key_id not in removed and p.key_id != record.key_id]
            if app.allows_personal and len(others) + 1 >= MAX_PERSONAL_APP_PASSWORDS:
                # A third secret would be refused (TooManyAppPasswords), and making room would mean
                # revoking ours before its replacement is in Nylas, or touching someone else's.
                return self._refuse_no_room(record, latest, app, others)
            try:
                latest, record = self._create(tenant, latest, record, app)
            except TooManyAppPasswords:
                return self._refuse_no_room(record, latest, app, others)
        else:
            self.remove_orphans(app, recorded={record.key_id, record.previous_key_id})

        if record.state is RotationState.AWAITING_CONFIRMATION:
            previous_gone = record.previous_key_id and not any(
                p.key_id == record.previous_key_id for p in app.passwords
            )
            if not confirm and not previous_gone:
                self._remind(record, latest)
                return Outcome(tenant, Result.AWAITING_CONFIRMATION, record.key_id, record.previous_key_id)
            return self._finish(tenant, latest, record)

        # pending: test, then set.
        if not latest.value:
            raise DependencyRejected("key-vault", f"the latest version of {latest.name} has no value")
        if not self._verify(record, latest.value):
            return self._roll_back(tenant, latest, record, "Entra never accepted the new secret within the budget")
        try:
            sign_in_tenant = record.nylas_sign_in_tenant(self.policy.tenant_id)
            nylas_app = self._nylas_app(record, known, scopes)
            pushed = self.deps.nylas.push(nylas_app, record.client_id, latest.value, sign_in_tenant)
        except NylasStateUnknown as exc:
            self._log_nylas_unknown(record, exc)
            raise  # transient: the next try re-reads, re-pushes (idempotent) and only then finishes
        except DependencyRejected as exc:
            # No rollback once the new secret verified: an earlier try of this rotation may have
            # pushed it (its answer lost), so Nylas may hold it. Keep both; the next run pushes again.
            return self._nylas_refused(record, latest, exc)
        if pushed.credential_id and pushed.credential_id != record.nylas_credential_id:
            # Recorded by finish's write (no extra call); a crash before it finds the credential by name.
            if pushed.recreated:
                self._alert_credential_recreated(record, pushed.credential_id)
            record = replace(record, nylas_credential_id=pushed.credential_id)
        if pushed.status is PushStatus.NEEDS_CONFIRMATION:
            record = record.moved_to(RotationState.AWAITING_CONFIRMATION)
            self.deps.vault.update_tags(latest.name, latest.version, keep_requester(record.to_tags(), latest.tags))
            self._alert_manual(record, latest, first=True)
            return Outcome(tenant, Result.AWAITING_CONFIRMATION, record.key_id, record.previous_key_id)
        return self._finish(tenant, latest, record)

    def _create(
        self, tenant: str, latest: SecretVersion, record: TenantRecord, app: AppInfo
    ) -> tuple[SecretVersion, TenantRecord]:
        rotation_id = new_rotation_id()
        new = self.add_password_within_policy(app.object_id, rotation_id, record.lifetime_days)
        # Durability first: the secret text exists only in this process until this write lands.
        pending = TenantRecord(
            **{
                **record.__dict__,
                "key_id": new.key_id,
                "previous_key_id": record.key_id,
                "rotation_id": rotation_id,
                "state": RotationState.PENDING,
                "lifetime_days": new_lifetime_days(new, record.lifetime_days),
            }
        )
        stored = self.store(tenant, new, pending)
        log.info(
            "rotation created credential",
            extra={"tenant": tenant, "step": "create", "key_id": new.key_id, "previous_key_id": record.key_id},
        )
        return stored, pending

    def add_password_within_policy(self, object_id: str, rotation_id: str, lifetime_days: int) -> NewPassword:
        """addPassword for lifetime_days; if a tenant policy refuses, step down the ladder to a week.

        Graph's refusal names the policy, not its maximum (world-facts §4b, G8), so the longest
        accepted lifetime is found by trying; the caller records it (``lifetime_days``), and the next
        rotation asks for that first."""
        name = credential_display_name(rotation_id)
        now = self.deps.clock.now()
        try:
            return self.deps.graph.add_password(object_id, name, now + timedelta(days=lifetime_days))
        except PolicyRejectedLifetime as exc:
            last: PolicyRejectedLifetime = exc
            for days in (d for d in LIFETIME_LADDER_DAYS if d < lifetime_days):
                try:
                    made = self.deps.graph.add_password(object_id, name, now + timedelta(days=days))
                except PolicyRejectedLifetime as again:
                    last = again
                    continue
                log.warning(
                    "a lifetime policy capped the secret",
                    extra={"step": "create", "asked_days": lifetime_days, "granted_days": days},
                )
                return made
            raise last from exc

    def store(self, tenant: str, new: NewPassword, record: TenantRecord) -> SecretVersion:
        return self.deps.vault.set(
            secret_name(self.policy.secret_prefix, tenant),
            new.secret_text,
            tags=record.to_tags(),
            expires_on=new.end,
            content_type=CONTENT_TYPE,
        )

    def _verify(self, record: TenantRecord, secret: str) -> bool:
        """True once Entra accepts the secret; False when it never does within the budget."""
        deadline = self.deps.clock.now() + timedelta(seconds=self.policy.verify_budget_seconds)
        delay = 1.0
        repaired = False
        while True:
            result = self.deps.verifier.verify(record.client_id, secret)
            if result.ok:
                return True
            if result.outcome is VerifyOutcome.EXPIRED:
                return False
            if result.outcome is VerifyOutcome.NO_SERVICE_PRINCIPAL and not repaired:
                # Someone deleted the app's service principal (or it was never made): no secret of
                # this app can get a token until it exists. Make it (idempotent), then ask again.
                log.warning(
                    "app has no service principal: creating it", extra={"tenant": record.tenant, "step": "test"}
                )
                self.deps.graph.ensure_service_principal(record.client_id)
                repaired = True
                continue
            if self.deps.clock.now() + timedelta(seconds=delay) > deadline:
                log.warning(
                    "verification failed past budget",
                    extra={"tenant": record.tenant, "step": "test", "code": result.code},
                )
                self.deps.notifier.notify(
                    Alert(
                        kind="verification-failed",
                        tenant=record.tenant,
                        severity=Severity.WARNING,
                        summary=f"Entra kept refusing the new secret ({result.code}) for "
                        f"{self.policy.verify_budget_seconds:.0f} s",
                        action="The rotation is rolled back and the previous secret stays live; check the app "
                        "registration in Entra and run `rotate` again.",
                        details={"client_id": record.client_id, "key_id": record.key_id},
                    )
                )
                return False
            self.deps.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _finish(self, tenant: str, latest: SecretVersion, record: TenantRecord) -> Outcome:
        if record.previous_key_id:
            self.deps.graph.remove_password(record.app_object_id, record.previous_key_id)
        done = record.moved_to(RotationState.CURRENT)
        self.deps.vault.update_tags(latest.name, latest.version, keep_requester(done.to_tags(), latest.tags))
        log.info(
            "rotation finished",
            extra={"tenant": tenant, "step": "finish", "key_id": done.key_id, "revoked": record.previous_key_id},
        )
        return Outcome(
            tenant,
            Result.ROTATED,
            done.key_id,
            record.previous_key_id,
            latest.expires_on,
            nylas_credential_id=done.nylas_credential_id,
        )

    def _roll_back(self, tenant: str, latest: SecretVersion, record: TenantRecord, why: str) -> Outcome:
        """Permanent failure after create: make the previous secret the latest version again, drop the new one."""
        if record.previous_key_id:
            previous = self._find_version(latest.name, record.previous_key_id)
            if previous is None or previous.value is None:
                raise DependencyRejected(
                    "key-vault", f"cannot roll back {tenant}: no version records key {record.previous_key_id}"
                )
            restored = TenantRecord(
                **{
                    **record.__dict__,
                    "key_id": record.previous_key_id,
                    "previous_key_id": "",
                    "state": RotationState.RESTORED,
                }
            )
            self.deps.vault.set(
                latest.name,
                previous.value,
                tags=restored.to_tags(),
                expires_on=previous.expires_on,
                content_type=CONTENT_TYPE,
            )
            self.deps.graph.remove_password(record.app_object_id, record.key_id)
        self.deps.notifier.notify(
            Alert(
                kind="rotation-failed",
                tenant=tenant,
                severity=Severity.CRITICAL,
                summary=f"Rotation of {tenant} failed permanently and was rolled back: {why}",
                action="The previous secret is live again and Nylas still holds it. Fix the cause "
                "(see docs/runbook.md#rotation-failed), then run `rotate " + tenant + "`.",
                details={"client_id": record.client_id, "kept_key_id": record.previous_key_id or record.key_id},
            )
        )
        log.error("rotation rolled back", extra={"tenant": tenant, "step": "rollback", "reason": why})
        return Outcome(tenant, Result.ROLLED_BACK, record.previous_key_id, record.key_id, message=why)

    def _find_version(self, name: str, key_id: str) -> SecretVersion | None:
        for version in sorted(
            self.deps.vault.list_versions(name), key=lambda v: v.created_on or datetime.min, reverse=True
        ):
            if version.tags.get("key-id") == key_id:
                return self.deps.vault.get(name, version.version)
        return None

    def remove_orphans(self, app: AppInfo, recorded: set[str]) -> list[str]:
        """Under the tenant lease no other run is mid-create, so a credential of ours that Key Vault
        does not record is left over from a run that died between addPassword and the store."""
        removed = []
        for password in app.passwords:
            if is_ours(password.display_name) and password.key_id not in recorded:
                self.deps.graph.remove_password(app.object_id, password.key_id)
                removed.append(password.key_id)
        if removed:
            log.info("removed orphaned credentials", extra={"app": app.app_id, "step": "cleanup", "keys": removed})
        return removed

    # --- refusals and reports -------------------------------------------------------------

    def _nylas_refused(self, record: TenantRecord, latest: SecretVersion, exc: DependencyRejected) -> Outcome:
        self.deps.notifier.notify(
            Alert(
                kind="nylas-refused",
                tenant=record.tenant,
                severity=Severity.CRITICAL,
                summary=f"Nylas refused the new client secret of {record.tenant}: {exc.message}",
                action=(
                    "Both the previous and the new secret stay valid, and neither is revoked: Nylas may hold "
                    "either (an earlier try may have landed). Fix the cause (the Nylas API key in Key Vault "
                    f"secret {record.nylas_credential or '-'}, the application, its connector), then run "
                    f"`python -m rotator rotate {record.tenant}`; the nightly scan also retries "
                    "(docs/runbook.md#nylas-refused)."
                ),
                details={
                    "client_id": record.client_id,
                    "new_key_id": record.key_id,
                    "previous_key_id": record.previous_key_id,
                    "error": exc.error_code or "",
                },
            )
        )
        log.error("nylas refused the push", extra={"tenant": record.tenant, "step": "push", "error": exc.error_code})
        return Outcome(
            record.tenant,
            Result.NYLAS_REFUSED,
            record.key_id,
            record.previous_key_id,
            latest.expires_on,
            message=f"Nylas refused the new secret: {exc.message}",
        )

    def _log_nylas_unknown(self, record: TenantRecord, exc: NylasStateUnknown) -> None:
        # A log line, not an alert: the queue tries again within minutes, and only a failure that
        # outlasts its tries (the poison alert) or a refusal (nylas-refused) needs a person.
        log.warning(
            "nylas state unknown: both secrets stay valid and neither is revoked; the next try pushes again",
            extra={"tenant": record.tenant, "step": "push", "key_id": record.key_id, "error": exc.message},
        )

    def _refuse_no_room(
        self, record: TenantRecord, latest: SecretVersion, app: AppInfo, others: list[PasswordInfo]
    ) -> Outcome:
        now = self.deps.clock.now()
        days_left = (to_utc(latest.expires_on) - now).days if latest.expires_on else None
        names = ", ".join(f"'{p.display_name or '(no name)'}' (key {p.key_id})" for p in others) or "(none)"
        self.deps.notifier.notify(
            Alert(
                kind="secret-limit",
                tenant=record.tenant,
                severity=Severity.CRITICAL
                if days_left is not None and days_left <= self.policy.manual_escalate_days
                else Severity.WARNING,
                summary=(
                    f"Rotation of {record.tenant} cannot start: app {app.app_id} signs in personal Microsoft "
                    f"accounts, so Entra allows it {MAX_PERSONAL_APP_PASSWORDS} client secrets, and besides the "
                    f"one Nylas uses it holds {len(others)} that this service did not create"
                    + (f"; the live secret expires in {days_left} days" if days_left is not None else "")
                ),
                action=(
                    f"Remove the secret(s) {names} in Entra (App registrations > {app.display_name or app.app_id} > "
                    f"Certificates & secrets), or move them to another app, then run "
                    f"`python -m rotator rotate {record.tenant}`. Nothing was changed."
                ),
                details={"client_id": record.client_id, "foreign_key_ids": ",".join(p.key_id for p in others)},
            )
        )
        log.warning("rotation refused: no room for a new secret", extra={"tenant": record.tenant, "step": "create"})
        return Outcome(
            record.tenant,
            Result.REFUSED,
            record.key_id,
            expires_on=latest.expires_on,
            message="no room for a new client secret (two at most on an app that signs in personal accounts)",
        )

    def _alert_credential_recreated(self, record: TenantRecord, new_id: str) -> None:
        self.deps.notifier.notify(
            Alert(
                kind="nylas-credential-recreated",
                tenant=record.tenant,
                severity=Severity.WARNING,
                summary=(
                    f"The Nylas connector credential {record.nylas_credential_id or '(unrecorded)'} of "
                    f"{record.tenant} was gone at Nylas; it was made again as {new_id}"
                ),
                action=(
                    "Users who signed in through the old credential must sign in again; hosted auth now "
                    f"uses credential_id={new_id} (GET /api/tenants/{record.tenant} shows the URL). "
                    "Find out who deleted it at Nylas."
                ),
                details={"old_credential_id": record.nylas_credential_id, "credential_id": new_id},
            )
        )

    # --- manual target -------------------------------------------------------------------

    def _remind(self, record: TenantRecord, latest: SecretVersion) -> None:
        self._alert_manual(record, latest, first=False)

    def _alert_manual(self, record: TenantRecord, latest: SecretVersion, *, first: bool) -> None:
        old_end = self._previous_expiry(latest.name, record)
        now = self.deps.clock.now()
        days_left = (to_utc(old_end) - now).days if old_end else None
        escalate = days_left is not None and days_left <= self.policy.manual_escalate_days
        kind = "manual-action" if first else ("manual-escalation" if escalate else "manual-reminder")
        dashboard = (
            "https://ireland-dashboard.nylas.com" if record.nylas_region == "eu" else "https://dashboard.nylas.com"
        )
        self.deps.notifier.notify(
            Alert(
                kind=kind,
                tenant=record.tenant,
                severity=Severity.CRITICAL if escalate else Severity.WARNING,
                summary=(
                    f"Nylas v2 app {record.nylas_app_id} needs the new Microsoft client secret pasted by hand"
                    + (f"; the old secret expires in {days_left} days" if days_left is not None else "")
                ),
                action=(
                    f"Open {dashboard} > App settings > Authentication > Office365 Auth, set client id "
                    f"{record.client_id} and the secret read from Key Vault secret {latest.name} "
                    f"(version {latest.version}), then confirm: POST /api/tenants/{record.tenant}/rotation/confirm, or "
                    f"`python -m rotator confirm {record.tenant}`."
                ),
                details={
                    "client_id": record.client_id,
                    "key_vault_secret": latest.name,
                    "key_vault_version": latest.version,
                    "dashboard": dashboard,
                    "old_secret_days_left": "" if days_left is None else str(days_left),
                },
            )
        )

    def _previous_expiry(self, name: str, record: TenantRecord) -> datetime | None:
        if not record.previous_key_id:
            return None
        for version in self.deps.vault.list_versions(name):
            if version.tags.get("key-id") == record.previous_key_id:
                return version.expires_on
        return None

    # --- helpers ------------------------------------------------------------------------

    def _nylas_app(self, record: TenantRecord, known: str | None = None, scopes: tuple[str, ...] = ()) -> NylasApp:
        credential = known or ""
        if not credential and record.nylas_target is not NylasTarget.MANUAL and record.nylas_credential:
            stored = self.deps.vault.get(record.nylas_credential)
            if stored is None or not stored.value:
                raise DependencyRejected(
                    "key-vault", f"the Nylas credential secret {record.nylas_credential} is missing or empty"
                )
            credential = stored.value
        return NylasApp(
            record.nylas_target.value,
            record.nylas_region,
            record.nylas_app_id,
            credential,
            credential_name=nylas_credential_name(self.policy.secret_prefix, record.tenant),
            credential_id=record.nylas_credential_id,
            scopes=scopes,
        )


def nylas_credential_name(prefix: str, tenant: str) -> str:
    """The tenant's connector credential at Nylas: unique per tenant and deployment (the app's uniqueName
    too), so a create repeated after a lost answer finds the first one by name."""
    return f"{prefix}{tenant}"


def new_lifetime_days(new: NewPassword, asked: int) -> int:
    """The lifetime actually granted (a policy may have clamped it), for the record."""
    if new.start and new.end:
        return max(1, min(asked, round((to_utc(new.end) - to_utc(new.start)).total_seconds() / 86400)))
    return asked


__all__ = ["Dependencies", "DependencyError", "Outcome", "Policy", "Result", "RotationEngine", "is_due", "is_ours"]
