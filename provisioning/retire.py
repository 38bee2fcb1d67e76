"""Retire a tenant: the end of its lifecycle, as idempotent and resumable as a rotation.

Order is the safety argument. The record is marked ``retiring`` first, so no nightly
scan or queued request creates a credential while it goes away; then everything
outside Key Vault is removed, each step "already gone counts as done"; the Key Vault
secrets go last, because they are what a resumed run reads to find the rest:

  1. mark    the latest version's state -> ``retiring`` (tags only, same version)
  2. nylas   v3-credential: delete the tenant's connector credential (by id and by name)
  3. revoke  removePassword every credential of ours on the app (foreign ones stay)
  4. app     delete the app registration, only when asked (Entra keeps it 30 days)
  5. vault   soft-delete the Nylas credential secret we made, then the tenant's secret

A crash anywhere leaves ``retiring`` (or, after 5, nothing): the next call resumes.
A v3-connector tenant's connector stays at Nylas (other credentials may live under it);
it then holds a revoked secret, which the answer says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.audit import keep_requester
from core.errors import BadRequest, DependencyRejected, DependencyUnavailable, TenantNotFound
from core.ports import NylasApp
from core.record import NylasTarget, RotationState, TenantRecord, nylas_credential_secret_name, secret_name
from core.telemetry import work_on
from rotation.engine import RotationEngine, is_ours, nylas_credential_name

log = logging.getLogger("provisioning.retire")


@dataclass(frozen=True)
class RetireResult:
    tenant: str
    already_retired: bool = False
    revoked_key_ids: tuple[str, ...] = ()
    nylas_credential_deleted: bool = False
    app_deleted: bool = False
    secrets_deleted: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "retired": True,
            "alreadyRetired": self.already_retired,
            "revokedKeyIds": list(self.revoked_key_ids),
            "nylasCredentialDeleted": self.nylas_credential_deleted,
            "appDeleted": self.app_deleted,
            "keyVaultSecretsDeleted": list(self.secrets_deleted),
            "notes": list(self.notes),
        }


def check_confirmation(tenant: str, confirm: str) -> None:
    """Retiring revokes the secret Nylas uses: the caller must name the tenant a second time."""
    if confirm != tenant:
        raise BadRequest(
            f"retiring revokes {tenant}'s client secret and deletes its Nylas credential: "
            f"repeat the tenant's name as confirm={tenant} to go ahead",
            field="confirm",
        )


class Retirement:
    def __init__(self, engine: RotationEngine) -> None:
        self.engine = engine
        self.deps = engine.deps
        self.policy = engine.policy

    def retire(self, tenant: str, *, confirm: str, delete_app: bool = False) -> RetireResult:
        check_confirmation(tenant, confirm)
        with work_on(tenant=tenant, step="retire"):
            return self._retire(tenant, confirm=confirm, delete_app=delete_app)

    def _retire(self, tenant: str, *, confirm: str, delete_app: bool) -> RetireResult:
        name = secret_name(self.policy.secret_prefix, tenant)
        with self.deps.leases.hold(tenant):
            latest = self.deps.vault.get(name)
            record = TenantRecord.from_tags(latest.tags) if latest else None
            if latest is None or record is None:
                if latest is None and self.deps.vault.is_deleted(name):
                    return RetireResult(tenant, already_retired=True)
                raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
            if record.state is not RotationState.RETIRING:
                record = record.moved_to(RotationState.RETIRING)
                self.deps.vault.update_tags(latest.name, latest.version, keep_requester(record.to_tags(), latest.tags))
                log.info("retirement started", extra={"tenant": tenant, "step": "retire"})
            notes: list[str] = []
            nylas_deleted = self._delete_nylas_credential(record, notes)
            revoked, app_gone = self._revoke(record)
            app_deleted = False
            if delete_app:
                self.deps.graph.delete(record.app_object_id)  # a 404 is checked by a read: see GraphClient
                app_deleted = True
            if app_gone:
                notes.append("the app registration could not be read (gone, or not replicated)")
            if record.nylas_target is NylasTarget.V3_CONNECTOR:
                notes.append(
                    f"the Microsoft connector of Nylas application {record.nylas_app_id} still names app "
                    f"{record.client_id}, whose secret is now revoked: point it at another app or delete it"
                )
            deleted = self._delete_secrets(tenant, record)
            log.info(
                "tenant retired",
                extra={"tenant": tenant, "step": "retire", "revoked": list(revoked), "app_deleted": app_deleted},
            )
            return RetireResult(tenant, False, tuple(revoked), nylas_deleted, app_deleted, tuple(deleted), tuple(notes))

    def _delete_nylas_credential(self, record: TenantRecord, notes: list[str]) -> bool:
        if record.nylas_target is not NylasTarget.V3_CREDENTIAL:
            return False
        stored = self.deps.vault.get(record.nylas_credential) if record.nylas_credential else None
        if stored is None or not stored.value:
            if record.nylas_credential and self.deps.vault.is_deleted(record.nylas_credential):
                # Step 5 soft-deletes this secret only after step 2 succeeded: a resumed run that
                # finds it in the vault's deleted items has already deleted the Nylas credential.
                notes.append("the Nylas API key secret is already deleted: the Nylas credential was deleted earlier")
                return False
            # Not there and not deleted by us: doubt, not proof. Stop before anything else goes.
            raise DependencyUnavailable(
                "key-vault",
                f"the Nylas API key secret {record.nylas_credential or '-'} of {record.tenant} cannot be read; "
                "retire again once it can (nothing else was removed)",
            )
        app = NylasApp(
            record.nylas_target.value,
            record.nylas_region,
            record.nylas_app_id,
            stored.value,
            credential_name=nylas_credential_name(self.policy.secret_prefix, record.tenant),
            credential_id=record.nylas_credential_id,
        )
        return self.deps.nylas.delete_credential(app)

    def _revoke(self, record: TenantRecord) -> tuple[list[str], bool]:
        """removePassword every credential of ours; (key ids, whether the app looked gone).

        A 404 on reading the app is not taken as proof that it is gone (a replication lag, a glitch):
        the credentials the record names are revoked by key id anyway (idempotent, and harmless
        if the app is really gone)."""
        try:
            app = self.deps.graph.get(record.app_object_id)
        except DependencyRejected as exc:
            if exc.status != 404:
                raise
            known = [k for k in (record.key_id, record.previous_key_id) if k]
            for key_id in known:
                self.deps.graph.remove_password(record.app_object_id, key_id)
            return known, True
        revoked = []
        for password in app.passwords:
            if is_ours(password.display_name):
                self.deps.graph.remove_password(app.object_id, password.key_id)
                revoked.append(password.key_id)
        return revoked, False

    def _delete_secrets(self, tenant: str, record: TenantRecord) -> list[str]:
        deleted = []
        own_credential = nylas_credential_secret_name(self.policy.secret_prefix, tenant)
        # A credentialSecret the caller named is theirs (it may serve other tenants): it stays.
        if record.nylas_credential == own_credential and self.deps.vault.delete(own_credential):
            deleted.append(own_credential)
        name = secret_name(self.policy.secret_prefix, tenant)
        if self.deps.vault.delete(name):
            deleted.append(name)
        return deleted
