"""The shared state behind every emulator: one World, one lock, one clock.

Every emulator (Entra, Graph, Key Vault, Nylas, control) reads and writes this
object, so a test can assert on cross-service invariants such as "the secret
Nylas holds is a live credential of the Entra app" without any HTTP.

Secret texts live only in fields declared ``repr=False`` and are never put in
``snapshot()``, ``call_log`` or any log line; hints (first 3 characters) are
used instead.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_RESOURCE_ID = "00000003-0000-0000-c000-000000000000"
VAULT_RESOURCE = "https://vault.azure.net"
TOKEN_LIFETIME_SECONDS = 3599
SYSTEM_OWNER = "system"
# Characters Entra uses in generated client secrets (URL-safe, no whitespace).
_SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~"


def iso(dt: datetime) -> str:
    """Graph's wire format for instants: ISO 8601, UTC, 'Z' suffix."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_client_secret() -> str:
    """A 40 character secret shaped like Entra's (3 chars, a digit, 'Q~', 34 chars)."""
    head = "".join(secrets.choice(_SECRET_ALPHABET[:62]) for _ in range(3))
    digit = secrets.choice("0123456789")
    tail = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
    return f"{head}{digit}Q~{tail}"


def add_years(dt: datetime, years: int) -> datetime:
    try:
        return dt.replace(year=dt.year + years)
    except ValueError:  # 29 February
        return dt.replace(year=dt.year + years, day=28)


class Clock:
    """World time = real UTC now + an offset that tests move forward."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float = 0, days: float = 0) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds, days=days)
        return self.now()

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset.total_seconds()

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)


# ---------------------------------------------------------------- faults


@dataclass
class Fault:
    route: str
    status: int | None = None
    retry_after: float | None = None
    times: int = 1
    latency: float = 0.0
    drop: bool = False
    phase: str = "before"
    error_code: str | None = None
    kill_pid: int | None = None
    skip: int = 0  # let this many matching requests through untouched first (fault the Nth call)

    def matches(self, route_id: str) -> bool:
        if self.route == "*":
            # A catch-all must never break the control API that is used to clear it.
            return not route_id.startswith("control.")
        return self.route == route_id or fnmatchcase(route_id, self.route)

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "status": self.status,
            "retry_after": self.retry_after,
            "times": self.times,
            "latency": self.latency,
            "drop": self.drop,
            "phase": self.phase,
            "error_code": self.error_code,
            "kill_pid": self.kill_pid,
            "skip": self.skip,
        }


class Faults:
    """Queued misbehaviours; each matching request consumes one 'time' of the first match.

    Beside them, ``chaos`` makes a random share of all requests misbehave (the simulation's
    "faults on 5 % of outside calls"), reproducibly from a seed.
    """

    CHAOS_KINDS = ("500", "503", "429", "drop")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._chaos_rate = 0.0
        self._chaos_routes = "*"
        self._chaos_random = random.Random(0)
        self.chaos_hits = 0

    def chaos(self, rate: float, *, seed: int = 0, routes: str = "*") -> None:
        """From now on, each matching request fails with probability ``rate`` (0 turns it off):
        a 500, 503, 429 (Retry-After: 1) or a dropped connection, chosen at random."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._chaos_rate = rate
            self._chaos_routes = routes
            self._chaos_random = random.Random(seed)

    def _chaos_fault(self, route_id: str) -> Fault | None:
        probe = Fault(self._chaos_routes)
        if self._chaos_rate <= 0 or not probe.matches(route_id):
            return None
        if self._chaos_random.random() >= self._chaos_rate:
            return None
        self.chaos_hits += 1
        kind = self._chaos_random.choice(self.CHAOS_KINDS)
        if kind == "drop":
            return Fault(route_id, drop=True)
        return Fault(route_id, status=int(kind), retry_after=1 if kind == "429" else None)

    def inject(
        self,
        route: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        times: int = 1,
        latency: float = 0.0,
        drop: bool = False,
        phase: str = "before",
        error_code: str | None = None,
        kill_pid: int | None = None,
        skip: int = 0,
    ) -> None:
        if skip < 0:
            raise ValueError("skip must not be negative")
        if phase not in {"before", "after"}:
            raise ValueError("phase must be 'before' or 'after'")
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is not None and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        fault = Fault(route, status, retry_after, times, latency, drop, phase, error_code, kill_pid, skip)
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._chaos_rate = 0.0
            self.chaos_hits = 0

    def take(self, route_id: str) -> Fault | None:
        with self._lock:
            chaotic = self._chaos_fault(route_id)
            if chaotic is not None:
                return chaotic
            for fault in self._faults:
                if fault.matches(route_id):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)


# ---------------------------------------------------------------- Graph / Entra


@dataclass
class PasswordCredential:
    key_id: str
    display_name: str | None
    hint: str
    start: datetime
    end: datetime
    secret: str = field(repr=False)

    def to_json(self, *, secret_text: str | None = None) -> dict[str, Any]:
        """Graph's passwordCredential; secretText only in the addPassword answer."""
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": secret_text,
            "startDateTime": iso(self.start),
        }


@dataclass
class GraphApp:
    object_id: str
    app_id: str
    created: datetime
    owners: set[str]
    data: dict[str, Any]
    password_credentials: list[PasswordCredential] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return str(self.data.get("displayName") or "")

    @property
    def unique_name(self) -> str | None:
        value = self.data.get("uniqueName")
        return str(value) if value else None

    @property
    def passwordCredentials(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.password_credentials]

    def to_json(self) -> dict[str, Any]:
        body = dict(self.data)
        body["id"] = self.object_id
        body["appId"] = self.app_id
        body["createdDateTime"] = iso(self.created)
        body["passwordCredentials"] = self.passwordCredentials
        return body


@dataclass
class ServicePrincipal:
    object_id: str
    app_id: str
    display_name: str
    created: datetime
    owners: set[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "appDisplayName": self.display_name,
            "accountEnabled": True,
            "servicePrincipalType": "Application",
            "servicePrincipalNames": [self.app_id],
            "tags": [],
            "passwordCredentials": [],
            "keyCredentials": [],
            "createdDateTime": iso(self.created),
            "deletedDateTime": None,
        }


def default_app_data(display_name: str, tenant_domain: str) -> dict[str, Any]:
    return {
        "deletedDateTime": None,
        "applicationTemplateId": None,
        "description": None,
        "displayName": display_name,
        "identifierUris": [],
        "notes": None,
        "publisherDomain": tenant_domain,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "uniqueName": None,
        "keyCredentials": [],
        "requiredResourceAccess": [],
        "web": {
            "homePageUrl": None,
            "logoutUrl": None,
            "redirectUris": [],
            "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
        },
    }


class GraphState:
    """Applications and service principals of the single emulated tenant."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.apps: dict[str, GraphApp] = {}
        self.service_principals: dict[str, ServicePrincipal] = {}
        self.lifetime_policy_max_days: int | None = None
        # App-management policies assigned to single apps (by uniqueName), beside the tenant default.
        self.app_lifetime_policies: dict[str, int] = {}
        self.replication_delay: float = 0.0

    def clear(self) -> None:
        self.apps.clear()
        self.service_principals.clear()
        self.lifetime_policy_max_days = None
        self.app_lifetime_policies.clear()

    # -- lookups (callers hold world.lock)
    def lifetime_policy_for(self, app: GraphApp) -> int | None:
        """The policy that applies to this app: one assigned to it, else the tenant default."""
        own = self.app_lifetime_policies.get((app.unique_name or "").lower())
        return own if own is not None else self.lifetime_policy_max_days

    def by_app_id(self, app_id: str) -> GraphApp | None:
        return next((a for a in self.apps.values() if a.app_id.lower() == app_id.lower()), None)

    def by_unique_name(self, unique_name: str) -> GraphApp | None:
        wanted = unique_name.lower()
        return next((a for a in self.apps.values() if (a.unique_name or "").lower() == wanted), None)

    def sp_by_app_id(self, app_id: str) -> ServicePrincipal | None:
        return next((s for s in self.service_principals.values() if s.app_id.lower() == app_id.lower()), None)

    def replicated(self, created: datetime) -> bool:
        """False while a new object is still invisible to reads (directory replication)."""
        return (self._world.clock.now() - created).total_seconds() >= self.replication_delay

    # -- mutations
    def create_app(self, owner: str, data: dict[str, Any]) -> GraphApp:
        with self._world.lock:
            body = default_app_data(str(data.get("displayName") or ""), self._world.entra.tenant_domain)
            body.update(data)
            app = GraphApp(
                object_id=str(uuid.uuid4()),
                app_id=str(uuid.uuid4()),
                created=self._world.clock.now(),
                owners={owner},
                data=body,
            )
            self.apps[app.object_id] = app
            return app

    def add_foreign_app(
        self, display_name: str = "someone else's app", *, owner: str = "someone-else", unique_name: str | None = None
    ) -> GraphApp:
        """An app the service's identity does not own (Graph answers 403 for it)."""
        data: dict[str, Any] = {"displayName": display_name}
        if unique_name:
            data["uniqueName"] = unique_name
        return self.create_app(owner, data)

    def new_password(
        self, app: GraphApp, display_name: str | None, start: datetime, end: datetime
    ) -> PasswordCredential:
        secret = new_client_secret()
        cred = PasswordCredential(
            key_id=str(uuid.uuid4()), display_name=display_name, hint=secret[:3], start=start, end=end, secret=secret
        )
        app.password_credentials.append(cred)
        return cred

    def add_password_direct(
        self, object_id: str, display_name: str | None = None, end: datetime | None = None
    ) -> tuple[str, str]:
        """Add a credential without HTTP (e.g. one made by a human in the portal); returns (keyId, secret)."""
        with self._world.lock:
            app = self.apps[object_id]
            now = self._world.clock.now()
            cred = self.new_password(app, display_name, now, end or add_years(now, 2))
            return cred.key_id, cred.secret

    def remove_password_direct(self, object_id: str, key_id: str) -> bool:
        with self._world.lock:
            app = self.apps[object_id]
            before = len(app.password_credentials)
            app.password_credentials = [p for p in app.password_credentials if p.key_id.lower() != key_id.lower()]
            return len(app.password_credentials) != before

    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for app in self.apps.values():
            out.append(
                {
                    "id": app.object_id,
                    "appId": app.app_id,
                    "displayName": app.display_name,
                    "uniqueName": app.unique_name,
                    "owners": sorted(app.owners),
                    "createdDateTime": iso(app.created),
                    "passwordCredentials": app.passwordCredentials,
                    "servicePrincipal": self.sp_by_app_id(app.app_id) is not None,
                }
            )
        return out


@dataclass
class IssuedToken:
    client_id: str
    resource: str
    # Real (monotonic) expiry: the SDKs cache tokens on the real clock, so a world-clock
    # jump of days must not invalidate a token the client still believes is fresh.
    expires_monotonic: float


@dataclass(frozen=True)
class ServiceIdentity:
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    object_id: str = ""


class EntraState:
    def __init__(self, world: World, tenant_id: str) -> None:
        self._world = world
        self.tenant_id = tenant_id
        self.tenant_domain = "emulated.onmicrosoft.com"
        self.propagation_delay: float = 0.0
        self._tokens: dict[str, IssuedToken] = {}

    def known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {self.tenant_id.lower(), self.tenant_domain.lower()}

    def token_works(self, tenant: str, client_id: str, client_secret: str) -> tuple[bool, str]:
        """The token endpoint's decision without HTTP: (ok, AADSTS code or '' when ok)."""
        with self._world.lock:
            if not self.known_tenant(tenant):
                return False, "AADSTS90002"
            app = self._world.graph.by_app_id(client_id)
            if app is None:
                return False, "AADSTS700016"
            now = self._world.clock.now()
            matching = [p for p in app.password_credentials if secrets.compare_digest(p.secret, client_secret)]
            if not matching:
                return False, "AADSTS7000215"
            if any(p.start <= now < p.end and self._propagated(p, now) for p in matching):
                return True, ""
            if all(now >= p.end for p in matching):
                return False, "AADSTS7000222"
            # Known secret that Entra's token service has not seen yet (or not yet valid).
            return False, "AADSTS7000215"

    def _propagated(self, cred: PasswordCredential, now: datetime) -> bool:
        return (now - cred.start).total_seconds() >= self.propagation_delay

    def issue_token(self, client_id: str, resource: str) -> str:
        token = secrets.token_urlsafe(48)
        with self._world.lock:
            self._tokens[token] = IssuedToken(client_id, resource, time.monotonic() + TOKEN_LIFETIME_SECONDS)
        return token

    def check_token(self, token: str) -> IssuedToken | None:
        with self._world.lock:
            issued = self._tokens.get(token)
            if issued is None or issued.expires_monotonic <= time.monotonic():
                return None
            return issued

    def clear_tokens(self) -> None:
        with self._world.lock:
            self._tokens.clear()


# ---------------------------------------------------------------- Key Vault


@dataclass
class SecretVersion:
    version: str
    value: str = field(repr=False)
    content_type: str | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    tags: dict[str, str] | None


@dataclass
class SecretEntry:
    name: str  # the spelling used at creation; lookups are case-insensitive
    versions: list[SecretVersion] = field(default_factory=list)

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def find(self, version: str) -> SecretVersion | None:
        return next((v for v in self.versions if v.version.lower() == version.lower()), None)


@dataclass
class DeletedSecret:
    entry: SecretEntry
    deleted: int
    scheduled_purge: int


class KeyVaultState:
    def __init__(self, world: World) -> None:
        self._world = world
        self.secrets: dict[str, SecretEntry] = {}  # key: lower-case name
        self.deleted: dict[str, DeletedSecret] = {}
        self.purge_protection = True
        self.retention_days = 90
        self.allowed_clients: set[str] = set()

    @property
    def recovery_level(self) -> str:
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"

    def clear(self) -> None:
        self.secrets.clear()
        self.deleted.clear()
        self.purge_protection = True

    def expire_deleted(self) -> None:
        """Soft-deleted secrets past their scheduled purge date disappear (Key Vault's own purge)."""
        now = int(self._world.clock.now().timestamp())
        for key in [k for k, d in self.deleted.items() if d.scheduled_purge <= now]:
            del self.deleted[key]

    def value_of(self, name: str, version: str | None = None) -> str | None:
        """Test helper: a secret's value without HTTP."""
        with self._world.lock:
            entry = self.secrets.get(name.lower())
            if entry is None:
                return None
            found = entry.find(version) if version else entry.latest
            return found.value if found else None

    def snapshot(self) -> dict[str, Any]:
        def versions(entry: SecretEntry) -> list[dict[str, Any]]:
            return [
                {
                    "version": v.version,
                    "hint": v.value[:3],
                    "enabled": v.enabled,
                    "exp": v.exp,
                    "contentType": v.content_type,
                    "tags": v.tags,
                    "created": v.created,
                }
                for v in entry.versions
            ]

        return {
            "secrets": {e.name: versions(e) for e in self.secrets.values()},
            "deleted": {
                d.entry.name: {"deletedDate": d.deleted, "scheduledPurgeDate": d.scheduled_purge}
                for d in self.deleted.values()
            },
            "purge_protection": self.purge_protection,
        }


# ---------------------------------------------------------------- Nylas


@dataclass
class NylasHistoryEntry:
    time: datetime
    client_id: str
    hint: str
    secret: str = field(repr=False)


@dataclass
class NylasApp:
    kind: str  # "v3" or "v2"
    app_id: str
    credential: str = field(repr=False)  # v3 API key or v2 client secret
    region: str = "us"
    settings: dict[str, Any] | None = None  # connector/integration settings without the secret
    client_secret: str | None = field(default=None, repr=False)
    scope: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # v2 name, redirect_uris...
    history: list[NylasHistoryEntry] = field(default_factory=list)


class NylasState:
    def __init__(self, world: World) -> None:
        self._world = world
        self.apps: dict[str, NylasApp] = {}

    def clear(self) -> None:
        self.apps.clear()

    def add_v3_app(self, app_id: str, api_key: str, region: str = "us") -> NylasApp:
        with self._world.lock:
            app = NylasApp("v3", app_id, api_key, region.lower())
            self.apps[app_id] = app
            return app

    def add_v2_app(self, client_id: str, client_secret: str, region: str = "us") -> NylasApp:
        with self._world.lock:
            app = NylasApp("v2", client_id, client_secret, region.lower())
            self.apps[client_id] = app
            return app

    def by_api_key(self, api_key: str) -> NylasApp | None:
        return next(
            (a for a in self.apps.values() if a.kind == "v3" and secrets.compare_digest(a.credential, api_key)), None
        )

    def by_v2_credentials(self, client_id: str, client_secret: str) -> NylasApp | None:
        app = self.apps.get(client_id)
        if app is None or app.kind != "v2" or not secrets.compare_digest(app.credential, client_secret):
            return None
        return app

    def current(self, app_id: str) -> tuple[str, str] | None:
        with self._world.lock:
            app = self.apps.get(app_id)
            if app is None or app.settings is None or app.client_secret is None:
                return None
            return str(app.settings.get("client_id")), app.client_secret

    def history(self, app_id: str) -> list[tuple[datetime, str, str]]:
        with self._world.lock:
            app = self.apps.get(app_id)
            return [(h.time, h.client_id, h.hint) for h in app.history] if app else []

    def record(self, app: NylasApp, client_id: str, client_secret: str) -> None:
        """Nylas now holds this client id and secret (an API PATCH, or a person in the dashboard)."""
        app.settings = {**(app.settings or {}), "client_id": client_id}
        app.client_secret = client_secret
        app.history.append(NylasHistoryEntry(self._world.clock.now(), client_id, client_secret[:3], client_secret))

    def snapshot(self) -> dict[str, Any]:
        return {
            a.app_id: {
                "kind": a.kind,
                "region": a.region,
                "settings": a.settings,
                "hint": a.client_secret[:3] if a.client_secret else None,
                "scope": a.scope,
                "history": [{"time": iso(h.time), "client_id": h.client_id, "hint": h.hint} for h in a.history],
            }
            for a in self.apps.values()
        }


# ---------------------------------------------------------------- the world


class World:
    """All emulator state. ``lock`` serialises every request's processing (simple and enough)."""

    def __init__(self, *, tenant_id: str | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self.call_log: list[tuple[str, str, str, int]] = []
        self.latency: float = 0.0
        self.entra = EntraState(self, tenant_id or str(uuid.uuid4()))
        self.graph = GraphState(self)
        self.keyvault = KeyVaultState(self)
        self.nylas = NylasState(self)
        self._defaults: tuple[float, float, int | None, bool] = (0.0, 0.0, None, True)
        self.identity = ServiceIdentity(
            self.entra.tenant_id, str(uuid.uuid4()), new_client_secret(), object_id=str(uuid.uuid4())
        )
        self._register_identity()

    def set_defaults(
        self,
        *,
        graph_replication_delay: float = 0.0,
        propagation_delay: float = 0.0,
        lifetime_policy_max_days: int | None = None,
        purge_protection: bool = True,
    ) -> None:
        """Apply start-up options and remember them so reset() returns to them, not to zero."""
        with self.lock:
            self._defaults = (graph_replication_delay, propagation_delay, lifetime_policy_max_days, purge_protection)
            self._apply_defaults()

    def _apply_defaults(self) -> None:
        replication, propagation, max_days, purge_protection = self._defaults
        self.graph.replication_delay = replication
        self.entra.propagation_delay = propagation
        self.graph.lifetime_policy_max_days = max_days
        self.keyvault.purge_protection = purge_protection

    def latency_all(self, seconds: float) -> None:
        """Extra latency on every request (benchmarks); 0 turns it off."""
        self.latency = max(0.0, float(seconds))

    def record_call(self, route: str, method: str, path: str, status: int) -> None:
        with self.lock:
            self.call_log.append((route, method, path, status))

    def count_call(self, route: str) -> None:
        with self.lock:
            self.calls[route] += 1

    def reset_calls(self) -> None:
        with self.lock:
            self.calls.clear()
            self.call_log.clear()

    def reset(self) -> None:
        """Back to a fresh world, keeping the service identity (and its issued tokens).

        Apps, secrets, Nylas apps, faults, calls, latency and the clock offset are cleared;
        delays, the lifetime policy and purge protection return to the start-up options."""
        with self.lock:
            self.faults.clear()
            self.reset_calls()
            self.clock.reset()
            self.latency = 0.0
            self.graph.clear()
            self.keyvault.clear()
            self.nylas.clear()
            self._apply_defaults()
            self._register_identity()

    def _register_identity(self) -> None:
        """The service's own app: owned by nobody, a never-expiring secret, allowed into the vault."""
        ident = self.identity
        # Backdated so neither replication nor propagation delays ever apply to it.
        app = GraphApp(
            object_id=ident.object_id,
            app_id=ident.client_id,
            created=datetime(2000, 1, 1, tzinfo=UTC),
            owners={SYSTEM_OWNER},
            data=default_app_data("nylas-entra-rotator (service identity)", self.entra.tenant_domain),
        )
        app.password_credentials.append(
            PasswordCredential(
                key_id=str(uuid.uuid4()),
                display_name="local",
                hint=ident.client_secret[:3],
                start=datetime(2000, 1, 1, tzinfo=UTC),
                end=datetime(2999, 1, 1, tzinfo=UTC),
                secret=ident.client_secret,
            )
        )
        self.graph.apps[app.object_id] = app
        self.keyvault.allowed_clients = {ident.client_id}

    def secret_values(self) -> set[str]:
        """Every secret value this world knows (Key Vault values, Entra passwords, Nylas
        credentials): what a no-leak check looks for in logs, alerts and output."""
        found: set[str] = set()
        with self.lock:
            for entry in self.keyvault.secrets.values():
                found.update(v.value for v in entry.versions)
            for app in self.graph.apps.values():
                found.update(p.secret for p in app.password_credentials)
            for nylas in self.nylas.apps.values():
                found.add(nylas.credential)
                found.update(h.secret for h in nylas.history)
        return {s for s in found if s and len(s) >= 8}

    def nylas_secret_works(self, app_id: str) -> bool:
        """True iff the secret Nylas holds for app_id gets a token for the Entra app it names."""
        held = self.nylas.current(app_id)
        if held is None:
            return False
        client_id, client_secret = held
        ok, _ = self.entra.token_works(self.entra.tenant_id, client_id, client_secret)
        return ok

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "clock": iso(self.clock.now()),
                "clock_offset_seconds": self.clock.offset_seconds,
                "tenant_id": self.entra.tenant_id,
                "service_client_id": self.identity.client_id,
                "graph": {
                    "apps": self.graph.snapshot(),
                    "lifetime_policy_max_days": self.graph.lifetime_policy_max_days,
                    "replication_delay": self.graph.replication_delay,
                },
                "entra": {"propagation_delay": self.entra.propagation_delay},
                "keyvault": self.keyvault.snapshot(),
                "nylas": self.nylas.snapshot(),
                "faults": [f.to_json() for f in self.faults.pending()],
                "calls": dict(self.calls),
            }
