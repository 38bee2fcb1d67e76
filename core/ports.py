"""The ports: one small typed interface per outside system, beside the domain.

Use cases and the rotation state machine import only this module, never an SDK or an
adapter. The adapters live in ``clients/`` (graph.py, keyvault.py, entra.py, nylas.py,
storage.py, alerts.py) and implement these; ``bootstrap`` (the composition root, above
every layer) builds them from settings. Every adapter raises only ``core.errors`` types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

# --- Microsoft Graph: applications -------------------------------------------------


@dataclass(frozen=True)
class AppSpec:
    """What we want an app registration to look like."""

    unique_name: str
    display_name: str
    sign_in_audience: str  # AzureADMyOrg | AzureADMultipleOrgs | AzureADandPersonalMicrosoftAccount
    redirect_uris: tuple[str, ...]
    required_resource_access: tuple[dict[str, Any], ...]
    tags: tuple[str, ...]
    notes: str = ""
    # 2 for apps that sign in personal accounts (Graph refuses them otherwise); None leaves it unset.
    requested_access_token_version: int | None = None


@dataclass(frozen=True)
class PasswordInfo:
    key_id: str
    display_name: str
    hint: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class NewPassword:
    key_id: str
    secret_text: str = field(repr=False)
    hint: str = ""
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class AppInfo:
    object_id: str
    app_id: str
    unique_name: str
    display_name: str
    sign_in_audience: str = ""
    redirect_uris: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    passwords: tuple[PasswordInfo, ...] = ()

    @property
    def allows_personal(self) -> bool:
        """Apps that also sign in personal accounts hold two client secrets at most (world-facts §3)."""
        return self.sign_in_audience in PERSONAL_AUDIENCES


PERSONAL_AUDIENCES = frozenset({"AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"})
MAX_PERSONAL_APP_PASSWORDS = 2


# An app's face to the people who consent to it (issue 14: provisioning/branding.py, readiness.py, publisher.py).
@dataclass(frozen=True)
class InfoUrls:
    """The writable part of an app's ``info`` (Graph's informationalUrl); "" is unset. logoUrl is read-only."""

    marketing_url: str = ""
    privacy_statement_url: str = ""
    support_url: str = ""
    terms_of_service_url: str = ""


@dataclass(frozen=True)
class VerifiedPublisher:
    """An app's ``verifiedPublisher``: the Partner One (MPN) id set with setVerifiedPublisher; "" when none."""

    publisher_id: str = ""
    display_name: str = ""
    added: datetime | None = None


@dataclass(frozen=True)
class AppProfile:
    """What an app registration shows the people who consent to it, read with one GET."""

    object_id: str
    app_id: str
    sign_in_audience: str = ""
    publisher_domain: str = ""
    verified_publisher: VerifiedPublisher = VerifiedPublisher()
    info: InfoUrls = InfoUrls()
    logo_url: str = ""  # Graph's CDN URL of the uploaded logo; "" when the app has none
    tags: tuple[str, ...] = ()
    required_resource_access: tuple[dict[str, Any], ...] = ()


class GraphApps(Protocol):
    def find_by_unique_name(self, unique_name: str) -> AppInfo | None: ...
    def find_by_app_id(self, app_id: str) -> AppInfo | None: ...
    def owned(self, object_id: str) -> bool:
        """Whether the service's identity owns the app (it can read every app, write only these)."""
        ...

    def get(self, object_id: str) -> AppInfo: ...
    def upsert(self, spec: AppSpec) -> AppInfo:
        """Create by uniqueName if missing, else update; returns the app (created or existing)."""
        ...

    def update(self, object_id: str, spec: AppSpec) -> None: ...
    def ensure_service_principal(self, app_id: str) -> None: ...
    def add_password(self, object_id: str, display_name: str, end: datetime) -> NewPassword: ...
    def remove_password(self, object_id: str, key_id: str) -> None:
        """Idempotent: a key id that is already gone is not an error."""
        ...

    def delete(self, object_id: str) -> None:
        """Delete the app registration (Entra keeps it 30 days in deleted items). Idempotent."""
        ...

    def profile(self, object_id: str) -> AppProfile:
        """Publisher domain, verified publisher, info, logo URL, tags and permissions: one GET ($select)."""
        ...

    def update_profile(
        self, object_id: str, *, info: InfoUrls | None = None, tags: tuple[str, ...] | None = None
    ) -> None:
        """One PATCH of ``info`` (replaced whole: send every field to keep) and/or ``tags`` (replaced whole)."""
        ...

    def put_logo(self, object_id: str, content_type: str, data: bytes) -> None:
        """PUT /applications/{id}/logo with the image as the body."""
        ...

    def set_verified_publisher(self, object_id: str, publisher_id: str) -> None:
        """Delegated (a signed-in user) only: Graph refuses an application token."""
        ...

    def unset_verified_publisher(self, object_id: str) -> None:
        """Delegated (a signed-in user) only: Graph refuses an application token."""
        ...


# --- Key Vault: the source of truth --------------------------------------------------


@dataclass(frozen=True)
class SecretVersion:
    name: str
    version: str
    tags: dict[str, str]
    expires_on: datetime | None
    enabled: bool
    created_on: datetime | None
    updated_on: datetime | None
    id: str = ""
    value: str | None = field(default=None, repr=False)  # None when only properties were read


class SecretStore(Protocol):
    def get(self, name: str, version: str | None = None) -> SecretVersion | None: ...
    def set(
        self, name: str, value: str, *, tags: dict[str, str], expires_on: datetime | None, content_type: str
    ) -> SecretVersion: ...
    def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None: ...
    def list_properties(self) -> Iterator[SecretVersion]:
        """Latest version's properties of every secret, paged by the vault: no value, no GET per secret."""
        ...

    def list_versions(self, name: str) -> list[SecretVersion]: ...
    def delete(self, name: str) -> bool:
        """Soft-delete a secret (recoverable for the vault's retention days); False when already gone."""
        ...

    def is_deleted(self, name: str) -> bool: ...


# --- Entra: does a client secret work? ----------------------------------------------


class VerifyOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # AADSTS7000215 (wrong or not yet propagated) and kin
    EXPIRED = "expired"  # AADSTS7000222
    UNKNOWN_CLIENT = "unknown-client"  # AADSTS700016 (app not replicated yet, or gone)
    NO_SERVICE_PRINCIPAL = "no-service-principal"  # AADSTS7000229: repairable, make it and ask again


@dataclass(frozen=True)
class VerifyResult:
    outcome: VerifyOutcome
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is VerifyOutcome.ACCEPTED


class TokenVerifier(Protocol):
    def verify(self, client_id: str, client_secret: str) -> VerifyResult: ...


# --- Nylas ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NylasApp:
    target: str  # core.record.NylasTarget value
    region: str
    app_id: str
    credential: str = field(default="", repr=False)  # v3 API key or v2 client secret; never logged
    credential_name: str = ""  # v3-credential: the connector credential's unique name (from the tenant)
    credential_id: str = ""  # v3-credential: its id at Nylas, once known
    scopes: tuple[str, ...] = ()  # v3: the scope strings a connector created by us asks for


class PushStatus(StrEnum):
    PUSHED = "pushed"  # Nylas holds the new client id and secret (read back where possible)
    NEEDS_CONFIRMATION = "needs-confirmation"  # a person must paste it (manual target)


@dataclass(frozen=True)
class PushResult:
    status: PushStatus
    credential_id: str = ""  # v3-credential: the connector credential that now holds the secret
    recreated: bool = False  # the recorded credential was gone at Nylas: a new one was made


class ConnectorState(StrEnum):
    """What a Nylas v3 application holds for Microsoft, read before provisioning writes anything."""

    ABSENT = "absent"  # no Microsoft connector yet
    PRESENT = "present"
    NOT_APPLICABLE = "not-applicable"  # v2 targets


@dataclass(frozen=True)
class ConnectorInfo:
    state: ConnectorState
    client_id: str = ""  # the Microsoft client id in the connector's settings, if any


class NylasGateway(Protocol):
    def connector(self, app: NylasApp) -> ConnectorInfo:
        """Read-only: does the v3 application have a Microsoft connector? Refuses a bad API key."""
        ...

    def push(self, app: NylasApp, client_id: str, client_secret: str, tenant_id: str) -> PushResult: ...
    def held_client_id(self, app: NylasApp) -> str | None:
        """The Microsoft client id Nylas holds now, when the API can say (never the secret)."""
        ...

    def delete_credential(self, app: NylasApp) -> bool:
        """v3-credential: delete the tenant's connector credential; False when it was already gone."""
        ...


# --- Storage: per-tenant lease and the rotation queue -------------------------------


class Lease(Protocol):
    def check(self) -> None:
        """Raise LeaseLost if this lease is no longer ours (called before every write)."""
        ...


class LeaseManager(Protocol):
    def hold(self, tenant: str) -> AbstractContextManager[Lease]:
        """Hold the tenant's lease for the block, renewing it; raise LeaseBusy if another run holds it."""
        ...

    def check_current(self) -> None:
        """Raise LeaseLost if the lease this thread holds is no longer ours; nothing if it holds none.
        Called before every write (clients.fencing)."""
        ...


@dataclass(frozen=True)
class RotationRequest:
    tenant: str
    reason: str  # due | stuck | near-expiry-event | expired-event | on-demand | confirm | provision
    version: str = ""  # the Key Vault version the requester saw
    force: bool = False
    # Graph-paced (an app that signs in personal accounts: 60 app writes a minute, world-facts §4c),
    # and the start it was given (epoch seconds; 0: none yet).
    paced: bool = False
    slot: float = 0.0
    # Provisioning's follow-up: the Graph scopes a Nylas connector created now asks for (they live
    # nowhere else), and who asked (core/audit.py), carried so the queued writes record them too.
    scopes: tuple[str, ...] = ()
    requested_by: str = ""
    # Held for the rotation window (ROTATION_WINDOW): not to start before this (epoch seconds; 0: any time).
    not_before: float = 0.0

    def to_json(self) -> str:
        import json

        body: dict[str, object] = {
            "tenant": self.tenant,
            "reason": self.reason,
            "version": self.version,
            "force": self.force,
        }
        if self.paced:
            body["paced"] = True
        if self.slot:
            body["slot"] = round(self.slot, 3)
        if self.not_before:
            body["notBefore"] = round(self.not_before, 3)
        if self.scopes:
            body["scopes"] = list(self.scopes)
        if self.requested_by:
            body["requestedBy"] = self.requested_by
        return json.dumps(body, separators=(",", ":"))


class RotationQueue(Protocol):
    def send(self, request: RotationRequest, *, delay_seconds: float = 0.0) -> None:
        """Queue a request, invisible for ``delay_seconds`` (the storage queue's visibility timeout)."""
        ...


class GraphPace(Protocol):
    """Slots for Graph writes to personal-account apps, shared by every instance (a blob).

    ``reserve`` hands out ``count`` consecutive start times ``interval`` apart, none before the
    last one handed out nor before a throttling pause; ``slow_down`` pauses every later start."""

    def reserve(self, count: int, interval: float) -> list[float]:
        """Start times (epoch seconds) of ``count`` rotations."""
        ...

    def slow_down(self, seconds: float) -> float:
        """Graph throttled us: no paced start for ``seconds``; returns the pause's end (epoch)."""
        ...

    def paused_until(self) -> float:
        """The end of the current throttling pause (epoch seconds; 0 when none)."""
        ...


# --- Alerts --------------------------------------------------------------------------


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    kind: str  # rotation-failed | manual-action | manual-reminder | manual-escalation | secret-expired | ...
    tenant: str
    severity: Severity
    summary: str  # what happened
    action: str  # what a person should do next
    details: dict[str, str] = field(default_factory=dict)  # ids, key ids, references: never a secret


class Notifier(Protocol):
    def notify(self, alert: Alert) -> None:
        """Deliver an alert; never raises (a failing webhook must not fail a rotation)."""
        ...
