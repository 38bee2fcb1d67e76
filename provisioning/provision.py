"""Provision (or adopt) one tenant: the manual Nylas/Azure procedure as one idempotent call.

Re-running with the same request resumes where a failed run stopped:
  - the app is found again by uniqueName (or the adopted appId);
  - a credential of ours that Key Vault does not record (a crash between addPassword and
    the store) is removed before a new one is added, so there are never two of ours;
  - a stored but unpushed secret is handed to the rotation engine, which verifies and pushes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlencode

from core.audit import current_caller
from core.errors import BadRequest, Conflict, DependencyRejected, NotFoundYet, NotOwned
from core.ports import (
    MAX_PERSONAL_APP_PASSWORDS,
    AppInfo,
    AppSpec,
    ConnectorState,
    NewPassword,
    NylasApp,
    PasswordInfo,
    RotationRequest,
)
from core.record import (
    MARKER,
    Audience,
    NylasTarget,
    RotationState,
    TenantRecord,
    nylas_credential_secret_name,
    secret_name,
)
from core.telemetry import work_on
from provisioning.branding import apply_branding
from provisioning.graph_scopes import qualified, required_resource_access
from provisioning.manifest import Manifest
from provisioning.readiness import Readiness
from provisioning.request import ProvisionRequest
from rotation.engine import (
    PROVISION_FOLLOW_UP,
    Outcome,
    Result,
    RotationEngine,
    is_ours,
    new_lifetime_days,
    new_rotation_id,
)

log = logging.getLogger("provisioning")
T = TypeVar("T")

APP_TAG = MARKER  # a tag on the app registration, so people in the portal see who manages it
# A Key Vault secret that holds a tenant's Nylas credential says so, and names its tenant.
NYLAS_CREDENTIAL_PURPOSE_TAG = "purpose"
NYLAS_CREDENTIAL_PURPOSE = "nylas-credential"
REPLICATION_RETRIES = 6
# Where users start Nylas v3 hosted auth (world-facts §2); the emulators stand in for these locally.
NYLAS_V3_PUBLIC_API = {"us": "https://api.us.nylas.com", "eu": "https://api.eu.nylas.com"}


def hosted_auth_url(record: TenantRecord) -> str:
    """Nylas v3 hosted auth for this tenant's connector credential (world-facts §2, NP/NJ). The caller
    adds ``redirect_uri`` (a callback registered in their Nylas application) and ``state``."""
    if record.nylas_target is not NylasTarget.V3_CREDENTIAL or not record.nylas_credential_id:
        return ""
    query = urlencode(
        {
            "client_id": record.nylas_app_id,
            "provider": "microsoft",
            "response_type": "code",
            "credential_id": record.nylas_credential_id,
        }
    )
    return f"{NYLAS_V3_PUBLIC_API.get(record.nylas_region, NYLAS_V3_PUBLIC_API['us'])}/v3/connect/auth?{query}"


@dataclass(frozen=True)
class TenantView:
    """What the API answers about a tenant. Never a secret value."""

    tenant: str
    app_object_id: str
    client_id: str
    key_id: str
    key_vault_secret_id: str
    expires_on: datetime | None
    state: str
    nylas_target: str
    nylas_region: str
    nylas_app_id: str
    updated_on: datetime | None = None
    redirect_uri: str = ""
    admin_consent_url: str = ""
    warnings: tuple[str, ...] = field(default=())
    audience: str = ""
    nylas_credential_id: str = ""
    hosted_auth_url: str = ""
    replaces: str = ""
    replaced_by: str = ""
    readiness: Readiness | None = None  # the app's readiness for production (status of one tenant only)

    @classmethod
    def of(
        cls,
        record: TenantRecord,
        secret_id: str,
        expires_on: datetime | None,
        updated_on: datetime | None = None,
    ) -> TenantView:
        """The view of a tenant record (a Key Vault version's tags) and its version's attributes."""
        return cls(
            tenant=record.tenant,
            app_object_id=record.app_object_id,
            client_id=record.client_id,
            key_id=record.key_id,
            key_vault_secret_id=secret_id,
            expires_on=expires_on,
            state=record.state.value,
            nylas_target=record.nylas_target.value,
            nylas_region=record.nylas_region,
            nylas_app_id=record.nylas_app_id,
            updated_on=updated_on,
            audience=record.audience,
            nylas_credential_id=record.nylas_credential_id,
            hosted_auth_url=hosted_auth_url(record),
            replaces=record.replaces,
        )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "tenant": self.tenant,
            "appObjectId": self.app_object_id,
            "clientId": self.client_id,
            "keyId": self.key_id,
            "keyVaultSecretId": self.key_vault_secret_id,
            "expiresOn": self.expires_on.isoformat() if self.expires_on else None,
            "rotationState": self.state,
            "nylas": {"target": self.nylas_target, "region": self.nylas_region, "appId": self.nylas_app_id},
        }
        if self.audience:
            out["audience"] = self.audience
        if self.nylas_credential_id:
            out["nylas"]["credentialId"] = self.nylas_credential_id  # type: ignore[index]
        if self.hosted_auth_url:
            out["hostedAuthUrl"] = self.hosted_auth_url
        if self.replaces:
            out["replaces"] = self.replaces
        if self.replaced_by:
            out["replacedBy"] = self.replaced_by
        if self.updated_on:
            out["stateSince"] = self.updated_on.isoformat()
        if self.redirect_uri:
            out["redirectUri"] = self.redirect_uri
        if self.admin_consent_url:
            out["adminConsentUrl"] = self.admin_consent_url
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.readiness is not None:
            out["readiness"] = self.readiness.to_json()
        return out


@dataclass(frozen=True)
class ProvisionResult:
    created: bool  # False: the tenant already existed and nothing new was made
    view: TenantView
    # ``begin`` only: the queued run that verifies, pushes and finishes (None: nothing left to do).
    follow_up: RotationRequest | None = None

    @property
    def in_progress(self) -> bool:
        return self.follow_up is not None


STATE_AFTER = {
    Result.ROTATED: RotationState.CURRENT,
    Result.AWAITING_CONFIRMATION: RotationState.AWAITING_CONFIRMATION,
    Result.NOT_DUE: RotationState.CURRENT,
}


def _as_info(new: NewPassword) -> PasswordInfo:
    return PasswordInfo(new.key_id, "", new.hint, new.start, new.end)


def unique_name(prefix: str, tenant: str) -> str:
    return f"{prefix}{tenant}"


class Provisioner:
    def __init__(self, engine: RotationEngine, manifest: Manifest, *, authority_host: str) -> None:
        self.engine = engine
        self.deps = engine.deps
        self.policy = engine.policy
        self.manifest = manifest
        self.authority_host = authority_host.rstrip("/")

    def provision(self, request: ProvisionRequest) -> ProvisionResult:
        """The whole procedure in one call, verification waits included (the CLI: no gateway waits)."""
        return self._run(request, wait=True)

    def begin(self, request: ProvisionRequest) -> ProvisionResult:
        """The writes that make the tenant exist (app, service principal, first secret in Key Vault),
        and no more: proving the secret (Entra's propagation delay can outlast the 230 s an HTTP
        request may take), pushing it to Nylas and finishing are the ``follow_up`` run, queued by the
        caller. A tenant already on its way answers the same follow-up again; the run is idempotent
        and serialised by the tenant's lease, so a duplicate costs one quiet queue message."""
        return self._run(request, wait=False)

    def _run(self, request: ProvisionRequest, *, wait: bool) -> ProvisionResult:
        with work_on(tenant=request.tenant, target=request.nylas.target.value, step="provision"):
            return self._run_for(request, wait=wait)

    def _run_for(self, request: ProvisionRequest, *, wait: bool) -> ProvisionResult:
        name = secret_name(self.policy.secret_prefix, request.tenant)
        # Cheap path first: an already provisioned tenant costs one read and no lease.
        existing = self.deps.vault.get(name)
        record = TenantRecord.from_tags(existing.tags) if existing else None
        if record and request.existing_app_id and request.existing_app_id != record.client_id.lower():
            raise Conflict(
                f"tenant {request.tenant} is already provisioned with app {record.client_id}",
                field="existingAppId",
            )
        if record and record.state is RotationState.RETIRING:
            raise Conflict(
                f"tenant {request.tenant} is being retired: finish with DELETE /api/tenants/{request.tenant}"
                f"?confirm={request.tenant}, then provision it again",
                field="tenant",
            )
        if existing and record and record.state is not RotationState.PENDING:
            if not wait and record.state is RotationState.VERIFIED:
                # Proven, not yet pushed: the queued run is still at work (or lost: queue it again).
                return ProvisionResult(
                    False,
                    self._view(existing.id, record, existing.expires_on, request),
                    self._follow_up(record, tuple(qualified(request.scopes))),
                )
            apply_branding(self.deps, request.tenant, record.app_object_id, request.branding)  # issue 14
            return ProvisionResult(False, self._view(existing.id, record, existing.expires_on, request))
        if existing and record and not wait:
            # Pending: a run is (or should be) at work. No lease: the answer must not wait for it.
            return ProvisionResult(
                False,
                self._view(existing.id, record, existing.expires_on, request),
                self._follow_up(record, tuple(qualified(request.scopes))),
            )
        if existing and record is None:
            raise BadRequest(
                f"Key Vault secret {name} exists but is not managed by this service; choose another tenant slug",
                field="tenant",
            )
        with self.deps.leases.hold(request.tenant):
            return self._provision_locked(request, name, wait=wait)

    def _follow_up(self, record: TenantRecord, scopes: tuple[str, ...] = ()) -> RotationRequest:
        return RotationRequest(
            record.tenant,
            PROVISION_FOLLOW_UP,
            paced=Audience(record.audience).allows_personal,
            scopes=scopes,
            requested_by=current_caller(),  # the queued writes record who asked, too
        )

    def _provision_locked(self, request: ProvisionRequest, name: str, *, wait: bool) -> ProvisionResult:
        # The v2 manifest has permissions that need an administrator; the v3 scope table has none.
        consenting = self.manifest.admin_consent if request.generation == 2 else ()
        warnings = [f"{p} needs an administrator's consent (adminConsentUrl)" for p in consenting]
        latest = self.deps.vault.get(name)
        record = TenantRecord.from_tags(latest.tags) if latest else None
        if record is None:
            # Every check that can refuse the request (an app we may not adopt, a missing
            # credential secret, a Nylas application that cannot take this tenant, a tenant to
            # replace that is not there) runs before the first write.
            adopted = self._find_adopted(request)
            credential = self._nylas_credential_value(request)
            self._check_nylas(request, credential)
            self._check_replaces(request)
            credential_ref = self._store_nylas_credential(request)
            app = self._ensure_app(request, adopted)
            # Entra replicates a new app with a delay and publishes no bound: until a read by id
            # succeeds, writes against it may 404. Wait here, where we know the app is new.
            app = self._retry_replication(lambda: self.deps.graph.get(app.object_id))
            self._retry_replication(lambda: self.deps.graph.ensure_service_principal(app.app_id))
            apply_branding(self.deps, request.tenant, app.object_id, request.branding, locked=True)  # issue 14
            self.engine.remove_orphans(app, recorded=set())
            rotation_id = new_rotation_id()
            new = self._retry_replication(
                lambda: self.engine.add_password_within_policy(app.object_id, rotation_id, request.lifetime_days)
            )
            lifetime = new_lifetime_days(new, request.lifetime_days)
            if lifetime < request.lifetime_days:
                warnings.append(
                    f"a tenant policy capped the secret lifetime: {lifetime} days instead of {request.lifetime_days}"
                )
            record = TenantRecord(
                tenant=request.tenant,
                app_object_id=app.object_id,
                client_id=app.app_id,
                key_id=new.key_id,
                state=RotationState.PENDING,
                audience=request.audience,
                nylas_target=request.nylas.target,
                nylas_region=request.nylas.region,
                nylas_app_id=request.nylas.app_id,
                nylas_credential=credential_ref,
                lifetime_days=lifetime,
                rotate_before_days=min(request.rotate_before_days, max(1, lifetime // 2)),
                rotation_id=rotation_id,
                replaces=request.replaces,
            )
            latest = self.engine.store(request.tenant, new, record)
            log.info("provisioned credential stored", extra={"tenant": request.tenant, "step": "create"})
            if not wait:
                return ProvisionResult(
                    True,
                    self._view(latest.id, record, latest.expires_on, request, warnings),
                    self._follow_up(record, tuple(qualified(request.scopes))),
                )
            app = replace(app, passwords=(*app.passwords, _as_info(new)))
            outcome = self.engine.advance_from_record(
                request.tenant,
                loaded=(latest, record),
                app=app,
                nylas_credential=credential or None,
                scopes=tuple(qualified(request.scopes)),
            )
        else:
            assert latest is not None
            if not wait:
                return ProvisionResult(
                    False,
                    self._view(latest.id, record, latest.expires_on, request, warnings),
                    self._follow_up(record, tuple(qualified(request.scopes))),
                )
            outcome = self.engine.advance_from_record(request.tenant, loaded=(latest, record))
        if outcome.result is Result.NYLAS_REFUSED:
            # Stored and verified, not in use: a fixed request (or the nightly run) pushes it again.
            raise DependencyRejected("nylas", f"Nylas refused the new secret: {outcome.message}")
        if outcome.result is Result.ROLLED_BACK:
            # Nothing to roll back to on a first secret: say why, and let a fixed request resume.
            raise DependencyRejected("nylas", f"the new secret could not be put to use: {outcome.message}")
        final = replace(
            record,
            state=STATE_AFTER.get(outcome.result, record.state),
            nylas_credential_id=outcome.nylas_credential_id or record.nylas_credential_id,
        )
        return ProvisionResult(True, self._view(latest.id, final, latest.expires_on, request, warnings, outcome))

    def _nylas_credential_value(self, request: ProvisionRequest) -> str:
        """The Nylas API key (v3) or client secret (v2) as sent inline, or read from the Key Vault
        secret the request names (which must exist and must not be a tenant's client secret)."""
        if request.nylas.target is NylasTarget.MANUAL:
            return ""
        if not request.nylas.credential_secret:
            return request.nylas.credential
        stored = self.deps.vault.get(request.nylas.credential_secret)
        if stored is None:
            raise BadRequest(
                f"Key Vault secret {request.nylas.credential_secret} does not exist", field="nylas.credentialSecret"
            )
        if TenantRecord.from_tags(stored.tags) is not None:
            # A tenant's Entra client secret must never be sent to Nylas as an API key.
            raise BadRequest(
                f"Key Vault secret {request.nylas.credential_secret} is a tenant's client secret, "
                "not a Nylas credential",
                field="nylas.credentialSecret",
            )
        tags = stored.tags or {}
        if tags.get(NYLAS_CREDENTIAL_PURPOSE_TAG) != NYLAS_CREDENTIAL_PURPOSE or tags.get("tenant") != request.tenant:
            # Otherwise any secret in the vault (another tenant's Nylas key among them) could be sent
            # to Nylas on this tenant's behalf.
            raise BadRequest(
                f"Key Vault secret {request.nylas.credential_secret} is not marked as tenant "
                f"{request.tenant}'s Nylas credential: tag it purpose={NYLAS_CREDENTIAL_PURPOSE} and "
                f"tenant={request.tenant} (az keyvault secret set-attributes --tags ...), or send "
                "nylas.credential inline",
                field="nylas.credentialSecret",
            )
        if not stored.value:
            raise BadRequest(
                f"Key Vault secret {request.nylas.credential_secret} is empty", field="nylas.credentialSecret"
            )
        return stored.value

    def _check_nylas(self, request: ProvisionRequest, credential: str) -> None:
        """v3: the API key works and the application can take this tenant. Read-only."""
        target = request.nylas.target
        if target.generation != 3:
            return
        where = "nylas.credentialSecret" if request.nylas.credential_secret else "nylas.credential"
        app = NylasApp(target.value, request.nylas.region, request.nylas.app_id, credential)
        try:
            connector = self.deps.nylas.connector(app)
        except DependencyRejected as exc:
            if exc.status in (401, 403):
                raise BadRequest(
                    f"Nylas refused the API key for application {request.nylas.app_id} "
                    f"({request.nylas.region.upper()} region): check the key and the region",
                    field=where,
                ) from None
            raise
        if target is NylasTarget.V3_CREDENTIAL and connector.state is ConnectorState.ABSENT:
            raise Conflict(
                f"Nylas application {request.nylas.app_id} has no Microsoft connector, and connector "
                "credentials live under it. Create the connector first (Nylas dashboard > Connectors > "
                "Microsoft), or provision one tenant with target v3-connector for this application, then "
                "send this request again.",
                field="nylas.appId",
            )
        if target is NylasTarget.V3_CONNECTOR:
            holder = self._connector_holder(request)
            if holder:
                raise Conflict(
                    f"the Microsoft connector of Nylas application {request.nylas.app_id} "
                    f"({request.nylas.region.upper()}) is already held by tenant {holder}: a connector holds one "
                    "app. Use target v3-credential for one Entra app per customer.",
                    field="nylas.appId",
                )

    def _connector_holder(self, request: ProvisionRequest) -> str:
        """Another tenant of ours whose app is this Nylas application's connector (one scan of the vault)."""
        for props in self.deps.vault.list_properties():
            other = TenantRecord.from_tags(props.tags)
            if (
                other is not None
                and other.tenant != request.tenant
                and other.nylas_target is NylasTarget.V3_CONNECTOR
                and other.nylas_app_id == request.nylas.app_id
                and other.nylas_region == request.nylas.region
                and props.name.lower() == secret_name(self.policy.secret_prefix, other.tenant).lower()
            ):
                return other.tenant
        return ""

    def _check_replaces(self, request: ProvisionRequest) -> None:
        if not request.replaces:
            return
        old = self.deps.vault.get(secret_name(self.policy.secret_prefix, request.replaces))
        record = TenantRecord.from_tags(old.tags) if old else None
        if record is None:
            raise BadRequest(f"tenant {request.replaces} (to be replaced) is not provisioned", field="replaces")
        if record.nylas_target.generation != 2:
            raise BadRequest(
                f"tenant {request.replaces} is already a Nylas v3 tenant: only a v2 tenant is replaced",
                field="replaces",
            )

    def _store_nylas_credential(self, request: ProvisionRequest) -> str:
        if request.nylas.target is NylasTarget.MANUAL:
            return ""
        if request.nylas.credential_secret:
            return request.nylas.credential_secret  # checked by _nylas_credential_value
        ref = nylas_credential_secret_name(self.policy.secret_prefix, request.tenant)
        self.deps.vault.set(
            ref,
            request.nylas.credential,
            tags={
                "managed-by": MARKER,
                "tenant": request.tenant,
                NYLAS_CREDENTIAL_PURPOSE_TAG: NYLAS_CREDENTIAL_PURPOSE,
            },
            expires_on=None,
            content_type="application/vnd.nylas-entra-rotator.nylas-credential",
        )
        return ref

    def _spec(self, request: ProvisionRequest) -> AppSpec:
        """The app's shape: v2 targets get the v2 page's manifest and callback; v3 targets Graph
        delegated scopes only, the v3 callback, and (personal accounts) token version 2."""
        personal = Audience(request.audience).allows_personal
        return AppSpec(
            unique_name=unique_name(self.policy.secret_prefix, request.tenant),
            display_name=request.display_name,
            sign_in_audience=request.sign_in_audience,
            redirect_uris=(request.redirect_uri,),
            required_resource_access=(
                required_resource_access(request.scopes)
                if request.generation == 3
                else self.manifest.required_resource_access
            ),
            tags=(APP_TAG, f"tenant:{request.tenant}"),
            notes=f"Managed by {MARKER}: its client secret rotates automatically. Do not add secrets by hand.",
            requested_access_token_version=2 if personal else None,
        )

    def _find_adopted(self, request: ProvisionRequest) -> AppInfo | None:
        """The app named by existingAppId, read only. The service can read every app in the
        directory (OwnedBy), so whether it owns this one is asked of the app's owners, before any
        write (a 403 on a read, from a stricter directory, means the same)."""
        if not request.existing_app_id:
            return None
        try:
            app = self.deps.graph.find_by_app_id(request.existing_app_id)
        except NotOwned as exc:
            exc.field = "existingAppId"  # the 403 is about the app this field names
            raise
        if app is None:
            raise BadRequest(
                f"no app registration with appId {request.existing_app_id} is visible to the service",
                field="existingAppId",
            )
        if not self.deps.graph.owned(app.object_id):
            # Readable is not writable: checked before anything is written anywhere.
            raise NotOwned(
                f"the service's identity is not an owner of app {app.app_id} (Application.ReadWrite.OwnedBy can "
                "read every app but change only its own): an owner or an Application Administrator must add "
                "the service's identity as an owner first (docs/deploy.md#adopting-an-app-registration-made-by-hand)",
                field="existingAppId",
            )
        others = sorted(
            t.split(":", 1)[1] for t in app.tags if t.startswith("tenant:") and t != f"tenant:{request.tenant}"
        )
        if APP_TAG in app.tags and others:
            # Adopting it would revoke the other tenant's credential as an orphan.
            raise Conflict(f"app {app.app_id} is already managed for tenant {others[0]}", field="existingAppId")
        foreign = [p for p in app.passwords if not is_ours(p.display_name)]
        if Audience(request.audience).allows_personal and len(foreign) > 0:
            # Two secrets at most: ours and its replacement during a rotation. A foreign one would
            # leave no room, and this service never touches it.
            raise Conflict(
                f"app {app.app_id} holds {len(foreign)} client secret(s) this service did not create; an app that "
                f"signs in personal accounts allows {MAX_PERSONAL_APP_PASSWORDS}, and rotation needs both. Remove "
                "them in Entra (Certificates & secrets) first.",
                field="existingAppId",
            )
        return app

    def _ensure_app(self, request: ProvisionRequest, adopted: AppInfo | None) -> AppInfo:
        spec = self._spec(request)
        if adopted is not None:
            self.deps.graph.update(adopted.object_id, spec)
            return adopted
        return self.deps.graph.upsert(spec)

    def _retry_replication(self, call: Callable[[], T]) -> T:
        """Retry Graph's replication 404 (and Request_BadRequest on a service principal for an app
        it cannot see yet) right after a create; any other error is not ours to retry."""
        delay = 1.0
        for attempt in range(REPLICATION_RETRIES):
            try:
                return call()
            except DependencyRejected as exc:
                lag = exc.dependency == "microsoft-graph" and (
                    exc.status == 404 or exc.error_code == "Request_BadRequest"
                )
                if not lag:
                    raise
                if attempt == REPLICATION_RETRIES - 1:
                    raise NotFoundYet(
                        exc.dependency, f"still replicating after {attempt + 1} tries: {exc.message}"
                    ) from None
                self.deps.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _view(
        self,
        secret_id: str,
        record: TenantRecord,
        expires_on: datetime | None,
        request: ProvisionRequest | None = None,
        warnings: list[str] | None = None,
        outcome: Outcome | None = None,
    ) -> TenantView:
        consent_tenant = record.nylas_sign_in_tenant(self.policy.tenant_id)
        notes = list(warnings or [])
        if outcome and outcome.result is Result.AWAITING_CONFIRMATION:
            notes.append("Nylas target is manual: paste the client secret in the Nylas dashboard, then confirm")
        return replace(
            TenantView.of(record, secret_id, expires_on),
            redirect_uri=request.redirect_uri if request else "",
            admin_consent_url=f"{self.authority_host}/{consent_tenant}/adminconsent?client_id={record.client_id}",
            warnings=tuple(notes),
        )
