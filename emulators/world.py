"""The shared state behind every emulator: one World, one lock, one clock.

Every emulator (Entra, Graph, Key Vault, Nylas, control) reads and writes this
object, so a test can assert on cross-service invariants such as "the secret
Nylas holds is a live credential of the Entra app" without any HTTP.

Secret texts live only in fields declared ``repr=False`` and are never put in
``snapshot()``, ``call_log`` or any log line; hints (first 3 characters) are
used instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
PERSONAL_AUDIENCES = frozenset({"AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"})
PERSONAL_WRITE_LIMIT = 60
PERSONAL_WRITE_WINDOW_SECONDS = 60.0
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
    html: bool = False  # answer with a gateway's HTML page instead of the service's JSON error

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
            "html": self.html,
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
        html: bool = False,
    ) -> None:
        """Queue a fault. ``html=True`` answers like a gateway in front of the service (status 502
        unless ``status`` says otherwise, ``Content-Type: text/html``, an HTML page, no JSON)."""
        if skip < 0:
            raise ValueError("skip must not be negative")
        if phase not in {"before", "after"}:
            raise ValueError("phase must be 'before' or 'after'")
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is not None and not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        if html and status is None:
            status = 502
        fault = Fault(route, status, retry_after, times, latency, drop, phase, error_code, kill_pid, skip, bool(html))
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


# Namespace of the emulator's stable GUIDs (app-management policy ids, user ids).
_GUID_NAMESPACE = uuid.UUID("6f1c2a6e-3b7d-4c59-9a51-0b8e2f4d7c10")


def stable_guid(kind: str, key: str) -> str:
    """A GUID that is the same for the same (kind, key) in every world and every run."""
    return str(uuid.uuid5(_GUID_NAMESPACE, f"{kind}:{key.lower()}"))


@dataclass(frozen=True)
class LifetimePolicy:
    """An app-management policy's passwordLifetime restriction [G8][G10]: its id and maximum."""

    id: str
    max_days: int


class GraphState:
    """Applications and service principals of the single emulated tenant."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.apps: dict[str, GraphApp] = {}
        self.service_principals: dict[str, ServicePrincipal] = {}
        # The tenant's default app-management policy (tenantAppManagementPolicy): its id names it in
        # CredentialInvalidLifetimeAsPerAppPolicy [G8]; lifetime_policy_max_days is its maximum.
        self.tenant_policy_id: str = stable_guid("policy", "tenant-default")
        self.lifetime_policy_max_days: int | None = None
        # App-management policies assigned to single apps (by uniqueName), beside the tenant default;
        # each one's id is app_policy_id(uniqueName).
        self.app_lifetime_policies: dict[str, int] = {}
        self.replication_delay: float = 0.0
        # While an app is replicating, POST /servicePrincipals answers 400 Request_BadRequest [G12];
        # True makes it answer the other refusal seen then under Application.ReadWrite.OwnedBy
        # (403 "When using this permission, the backing application ... must in the local tenant").
        self.sp_denied_while_replicating: bool = False
        # Write quota on apps that personal accounts may sign in to [G11]: at most
        # personal_write_limit writes per sliding personal_write_window_seconds of world time,
        # per (calling app, tenant). None turns the quota off.
        self.personal_write_limit: int | None = PERSONAL_WRITE_LIMIT
        self.personal_write_window_seconds: float = PERSONAL_WRITE_WINDOW_SECONDS
        self.personal_writes: dict[tuple[str, str], list[datetime]] = {}
        self.personal_write_count = 0  # writes to such apps let through
        self.throttled_count = 0  # 429s answered by the quota

    def clear(self) -> None:
        self.apps.clear()
        self.service_principals.clear()
        self.lifetime_policy_max_days = None
        self.app_lifetime_policies.clear()
        self.sp_denied_while_replicating = False
        self.personal_write_limit = PERSONAL_WRITE_LIMIT
        self.personal_write_window_seconds = PERSONAL_WRITE_WINDOW_SECONDS
        self.personal_writes.clear()
        self.personal_write_count = 0
        self.throttled_count = 0

    def take_personal_write(self, caller: str, tenant: str) -> float | None:
        """Count one write to a personal-account app by ``caller``; None when allowed, else the
        seconds until the oldest write in the window leaves it (the 429's Retry-After)."""
        now = self._world.clock.now()
        limit = self.personal_write_limit
        window = timedelta(seconds=self.personal_write_window_seconds)
        times = [t for t in self.personal_writes.get((caller, tenant), []) if now - t < window]
        if limit is not None and len(times) >= limit:
            self.personal_writes[(caller, tenant)] = times
            self.throttled_count += 1
            return max(0.0, (times[-limit] + window - now).total_seconds())
        times.append(now)
        self.personal_writes[(caller, tenant)] = times
        self.personal_write_count += 1
        return None

    # -- lookups (callers hold world.lock)
    @staticmethod
    def app_policy_id(unique_name: str) -> str:
        """The id of the app-management policy assigned to the app with this uniqueName."""
        return stable_guid("policy", f"app:{unique_name}")

    def lifetime_policy(self, app: GraphApp) -> LifetimePolicy | None:
        """The passwordLifetime policy that applies to this app: one assigned to it, else the
        tenant default; None when neither restricts lifetimes."""
        key = (app.unique_name or "").lower()
        own = next((days for name, days in self.app_lifetime_policies.items() if name.lower() == key), None)
        if key and own is not None:
            return LifetimePolicy(self.app_policy_id(key), own)
        if self.lifetime_policy_max_days is not None:
            return LifetimePolicy(self.tenant_policy_id, self.lifetime_policy_max_days)
        return None

    def lifetime_policy_for(self, app: GraphApp) -> int | None:
        """The maximum password lifetime in days for this app (see lifetime_policy), or None."""
        policy = self.lifetime_policy(app)
        return policy.max_days if policy else None

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
    def create_app(self, owner: str, data: dict[str, Any], *, service_principal: bool = False) -> GraphApp:
        """An application owned by ``owner`` (a calling app's client id, or a user's name/UPN), as
        POST /applications makes it: without a service principal unless ``service_principal``."""
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
            if service_principal:
                self.add_service_principal(app, owner)
            return app

    def add_service_principal(self, app: GraphApp, owner: str | None = None) -> ServicePrincipal:
        """The app's service principal in this tenant (what POST /servicePrincipals makes), or the one
        it already has. Without one the token endpoint refuses the app's client credentials
        (AADSTS7000229)."""
        with self._world.lock:
            existing = self.sp_by_app_id(app.app_id)
            if existing is not None:
                return existing
            sp = ServicePrincipal(
                str(uuid.uuid4()), app.app_id, app.display_name, self._world.clock.now(), {owner} if owner else set()
            )
            self.service_principals[sp.object_id] = sp
            return sp

    def add_foreign_app(
        self,
        display_name: str = "someone else's app",
        *,
        owner: str = "someone-else",
        unique_name: str | None = None,
        service_principal: bool = True,
    ) -> GraphApp:
        """An app the service's identity does not own: it may read it but not change it (403). Made
        like an app registered in the portal, with its service principal (``service_principal``)."""
        data: dict[str, Any] = {"displayName": display_name}
        if unique_name:
            data["uniqueName"] = unique_name
        return self.create_app(owner, data, service_principal=service_principal)

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
    object_id: str = ""  # the application object
    sp_object_id: str = ""  # its service principal: the owner Graph lists for the apps it creates


# Tenant id every personal Microsoft account carries as its 'tid' (the consumers directory).
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
# login_hint domains that are personal Microsoft accounts (auto-created users).
PERSONAL_DOMAINS = frozenset({"outlook.com", "hotmail.com", "live.com"})
# Authority segments that are not one directory.
MULTI_TENANT_AUTHORITIES = frozenset({"common", "organizations", "consumers"})
AUTH_CODE_LIFETIME_SECONDS = 600  # "about 10 minutes" (guessed exact value)


@dataclass
class EntraUser:
    """A person who can sign in: a work account of some directory, or a personal account."""

    email: str
    kind: str  # "work" or "personal"
    home_tenant: str  # directory id; CONSUMERS_TENANT_ID for personal accounts
    object_id: str


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    email: str
    scopes: list[str]
    issued: datetime
    used: bool = False


@dataclass
class RefreshGrant:
    """What a refresh token stands for: bound to (client id, user), not to a client secret."""

    client_id: str
    email: str
    scopes: list[str]
    issued: datetime


@dataclass
class TokenOutcome:
    """The token endpoint's answer to a user grant, without HTTP.

    ``code`` is the AADSTS code ('' when ok), ``params`` fill the error's description template
    (ids and URIs only, never secrets), ``body`` is the token response (secret-bearing, repr=False)."""

    ok: bool
    code: str = ""
    params: dict[str, str] = field(default_factory=dict)
    email: str = ""
    body: dict[str, Any] = field(default_factory=dict, repr=False)


class EntraState:
    def __init__(self, world: World, tenant_id: str) -> None:
        self._world = world
        self.tenant_id = tenant_id
        self.tenant_domain = "emulated.onmicrosoft.com"
        self.propagation_delay: float = 0.0
        self._tokens: dict[str, IssuedToken] = {}
        self.users: dict[str, EntraUser] = {}  # key: lower-case email
        self.directories: dict[str, str] = {}  # other organisations: lower-case domain -> tenant id
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshGrant] = {}

    def known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {self.tenant_id.lower(), self.tenant_domain.lower()}

    def clear_users(self) -> None:
        """Users, other directories, authorization codes and refresh tokens (world.reset)."""
        with self._world.lock:
            self.users.clear()
            self.directories.clear()
            self._codes.clear()
            self._refresh.clear()

    # -- directories and users
    def directory_for(self, domain: str) -> str:
        """The tenant id of the (other) organisation that owns ``domain``; stable per domain."""
        domain = domain.lower()
        if domain == self.tenant_domain.lower():
            return self.tenant_id
        with self._world.lock:
            if domain not in self.directories:
                self.directories[domain] = str(uuid.uuid5(uuid.NAMESPACE_DNS, domain))
            return self.directories[domain]

    def resolve_authority(self, tenant: str) -> str | None:
        """The authority segment of a sign-in URL as a directory id, 'common', 'organizations' or
        'consumers'; None when no such directory exists (AADSTS90002)."""
        low = tenant.lower()
        if low in MULTI_TENANT_AUTHORITIES:
            return low
        if self.known_tenant(tenant):
            return self.tenant_id
        if low == CONSUMERS_TENANT_ID:
            return "consumers"
        with self._world.lock:
            for domain, tid in self.directories.items():
                if low in (domain, tid.lower()):
                    return tid
            if any(u.home_tenant.lower() == low for u in self.users.values()):
                return low
        return None

    def add_user(self, email: str, kind: str = "work", home_tenant: str | None = None) -> EntraUser:
        """A user who can sign in. A work user defaults to this world's tenant; a personal account
        always lives in the consumers directory."""
        if kind not in {"work", "personal"}:
            raise ValueError("kind must be 'work' or 'personal'")
        home = CONSUMERS_TENANT_ID if kind == "personal" else home_tenant or self.tenant_id
        user = EntraUser(email, kind, home, str(uuid.uuid4()))
        with self._world.lock:
            self.users[email.lower()] = user
        return user

    def user_for_hint(self, login_hint: str) -> EntraUser:
        """The user a login_hint names, created on first use: outlook.com/hotmail.com/live.com are
        personal accounts, this tenant's domain a work account here, any other domain a work account
        of another organisation."""
        with self._world.lock:
            found = self.users.get(login_hint.lower())
            if found is not None:
                return found
            domain = login_hint.rpartition("@")[2].lower()
            if domain in PERSONAL_DOMAINS:
                return self.add_user(login_hint, "personal")
            return self.add_user(login_hint, "work", self.directory_for(domain))

    # -- client authentication
    def token_works(self, tenant: str, client_id: str, client_secret: str) -> tuple[bool, str]:
        """The token endpoint's client-credentials decision without HTTP: (ok, AADSTS code or '' when
        ok). Beside client authentication, the app needs a service principal in the tenant
        (AADSTS7000229 [T4]; checked before the secret: guessed order)."""
        with self._world.lock:
            if not self.known_tenant(tenant):
                return False, "AADSTS90002"
            graph = self._world.graph
            if graph.by_app_id(client_id) is not None and graph.sp_by_app_id(client_id) is None:
                return False, "AADSTS7000229"
            return self.client_works(client_id, client_secret)

    def client_works(self, client_id: str, client_secret: str) -> tuple[bool, str]:
        """Client authentication alone (any grant type): the app exists and the secret is one of its
        live, propagated passwords."""
        with self._world.lock:
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

    # -- app-only tokens
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

    # -- user sign-in (authorization code flow)
    def issue_code(self, client_id: str, redirect_uri: str, user: EntraUser, scopes: list[str]) -> str:
        code = "0.A" + secrets.token_urlsafe(64)
        with self._world.lock:
            self._codes[code] = AuthorizationCode(
                client_id, redirect_uri, user.email, list(scopes), self._world.clock.now()
            )
        return code

    def redeem_code(
        self, *, tenant: str, code: str, client_id: str, client_secret: str, redirect_uri: str
    ) -> TokenOutcome:
        """grant_type=authorization_code without HTTP (Nylas redeems in-process)."""
        with self._world.lock:
            refused = self._authenticate(tenant, client_id, client_secret)
            if refused is not None:
                return refused
            issued = self._codes.get(code)
            if issued is None:
                return TokenOutcome(False, "AADSTS9002313", {"client_id": client_id, "tenant": tenant})
            if issued.client_id.lower() != client_id.lower():
                return TokenOutcome(False, "AADSTS70000", {"client_id": client_id, "tenant": tenant})
            if issued.used:
                return TokenOutcome(False, "AADSTS54005", {"client_id": client_id, "tenant": tenant})
            age = (self._world.clock.now() - issued.issued).total_seconds()
            if age > AUTH_CODE_LIFETIME_SECONDS:
                return TokenOutcome(False, "AADSTS70008", {"client_id": client_id, "tenant": tenant})
            if redirect_uri != issued.redirect_uri:
                return TokenOutcome(
                    False, "AADSTS50011", {"redirect_uri": redirect_uri, "expected": issued.redirect_uri}
                )
            issued.used = True
            return self._tokens_for(client_id, issued.email, issued.scopes)

    def redeem_refresh(self, *, tenant: str, refresh_token: str, client_id: str, client_secret: str) -> TokenOutcome:
        """grant_type=refresh_token without HTTP: the token is bound to (client id, user) and
        survives secret rotation; any currently valid secret of that app works."""
        with self._world.lock:
            refused = self._authenticate(tenant, client_id, client_secret)
            if refused is not None:
                return refused
            held = self._refresh.get(refresh_token)
            if held is None:
                return TokenOutcome(False, "AADSTS9002313", {"client_id": client_id, "tenant": tenant})
            if held.client_id.lower() != client_id.lower():
                return TokenOutcome(False, "AADSTS70000", {"client_id": client_id, "tenant": tenant})
            return self._tokens_for(client_id, held.email, held.scopes)

    def _authenticate(self, tenant: str, client_id: str, client_secret: str) -> TokenOutcome | None:
        if self.resolve_authority(tenant) is None:
            return TokenOutcome(False, "AADSTS90002", {"tenant": tenant})
        if not client_secret and self._world.graph.by_app_id(client_id) is not None:
            return TokenOutcome(False, "AADSTS7000218", {"client_id": client_id, "tenant": tenant})
        ok, code = self.client_works(client_id, client_secret)
        if not ok:
            return TokenOutcome(False, code, {"client_id": client_id, "tenant": tenant})
        return None

    def _tokens_for(self, client_id: str, email: str, scopes: list[str]) -> TokenOutcome:
        user = self.users.get(email.lower())
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s != "offline_access"),
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "ext_expires_in": TOKEN_LIFETIME_SECONDS,
            # A user's access token is opaque here and not accepted by the Graph emulator.
            "access_token": "eyJ0eXAi." + secrets.token_urlsafe(48),
        }
        if "offline_access" in scopes:
            refresh = "1.A" + secrets.token_urlsafe(64)
            self._refresh[refresh] = RefreshGrant(client_id, email, list(scopes), self._world.clock.now())
            body["refresh_token"] = refresh
        if "openid" in scopes and user is not None:
            body["id_token"] = _unsigned_jwt(
                {
                    "aud": client_id,
                    "iss": f"https://login.microsoftonline.com/{user.home_tenant}/v2.0",
                    "tid": user.home_tenant,
                    "oid": user.object_id,
                    "sub": user.object_id,
                    "preferred_username": user.email,
                    "email": user.email,
                    "ver": "2.0",
                }
            )
        return TokenOutcome(True, "", {}, email, body)

    def refresh_tokens(self) -> list[str]:
        """Every refresh token issued (for the world's no-leak list)."""
        with self._world.lock:
            return list(self._refresh)


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}."


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
        # Listings put an empty page that still carries a nextLink before every page [K2].
        self.empty_pages = False

    @property
    def recovery_level(self) -> str:
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"

    def clear(self) -> None:
        self.secrets.clear()
        self.deleted.clear()
        self.purge_protection = True
        self.empty_pages = False

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

# Where Microsoft sends users back to Nylas v3 (the redirect URI the Entra app must hold), per region.
NYLAS_V3_CALLBACKS = {
    "us": "https://api.us.nylas.com/v3/connect/callback",
    "eu": "https://api.eu.nylas.com/v3/connect/callback",
}
NYLAS_CREDENTIAL_TYPES = ("connector", "adminconsent", "serviceaccount")
PRIMARY_CREDENTIAL_NAME = "primary"  # name of the credential POST /v3/connectors makes (guessed)
_CREDENTIAL_SECRET_KEYS = ("client_secret", "private_key")


def unix(dt: datetime) -> int:
    return int(dt.timestamp())


@dataclass
class NylasHistoryEntry:
    time: datetime
    client_id: str
    hint: str
    secret: str = field(repr=False)


@dataclass
class NylasCredential:
    """A connector credential; ``data`` is credential_data as sent, secrets included (repr=False)."""

    id: str
    name: str
    credential_type: str
    created_at: int
    updated_at: int
    seq: int  # creation order, to sort credentials made within the same second
    data: dict[str, Any] = field(repr=False)

    @property
    def client_id(self) -> str:
        return str(self.data.get("client_id") or "")

    @property
    def client_secret(self) -> str:
        return str(self.data.get("client_secret") or "")

    @property
    def tenant(self) -> str:
        return str(self.data.get("tenant") or "common")

    def hashed_data(self) -> str:
        """A one-way digest of credential_data: what Nylas shows instead of the data."""
        canonical = json.dumps(self.data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "credential_type": self.credential_type,
            "hashed_data": self.hashed_data(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Grant:
    """A user's mailbox connected to a Nylas v3 application through Microsoft."""

    id: str
    email: str
    credential_id: str | None  # the credential named at sign-in; None = the connector's active one
    provider: str
    client_id: str  # the Entra app the user signed in to
    scopes: list[str]
    created_at: int
    updated_at: int
    refresh_token: str = field(default="", repr=False)  # Microsoft's refresh token, held by Nylas
    last_refresh: tuple[bool, str] | None = None


@dataclass
class NylasAuthSession:
    """A hosted-auth attempt between /v3/connect/auth and /v3/connect/callback."""

    app_id: str
    credential_id: str | None  # as asked (None = active credential)
    used_credential_id: str  # the credential whose client id Microsoft saw
    redirect_uri: str
    state: str | None
    scopes: list[str]
    access_type: str
    created: datetime


@dataclass
class NylasCode:
    app_id: str
    grant_id: str
    redirect_uri: str
    access_type: str
    issued: datetime
    used: bool = False


@dataclass
class NylasApp:
    kind: str  # "v3" or "v2"
    app_id: str
    credential: str = field(repr=False)  # v3 API key or v2 client secret
    region: str = "us"
    # v3: the Microsoft connector's settings without the secret (None = no connector), kept in step
    # with its primary credential; v2: the integration's settings.
    settings: dict[str, Any] | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # v2 name, redirect_uris...
    history: list[NylasHistoryEntry] = field(default_factory=list)
    # v3 only
    connector_name: str = "Microsoft"
    active_credential_id: str | None = None
    primary_credential_id: str | None = None
    credentials: dict[str, NylasCredential] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, str] = field(default_factory=dict, repr=False)  # Nylas access token -> grant id
    provider_errors: list[tuple[datetime, str]] = field(default_factory=list)  # Nylas's own log of refusals

    @property
    def has_connector(self) -> bool:
        return self.kind == "v3" and self.settings is not None


class NylasState:
    def __init__(self, world: World) -> None:
        self._world = world
        self.apps: dict[str, NylasApp] = {}
        self.sessions: dict[str, NylasAuthSession] = {}  # key: the state Nylas sent to Microsoft
        self.codes: dict[str, NylasCode] = {}
        self._seq = 0

    def clear(self) -> None:
        self.apps.clear()
        self.sessions.clear()
        self.codes.clear()

    def add_v3_app(self, app_id: str, api_key: str, region: str = "us") -> NylasApp:
        """A Nylas v3 application, without a Microsoft connector (POST /v3/connectors makes one)."""
        with self._world.lock:
            app = NylasApp("v3", app_id, api_key, region.lower())
            self.apps[app_id] = app
            return app

    def add_v2_app(self, client_id: str, client_secret: str, region: str = "us") -> NylasApp:
        with self._world.lock:
            app = NylasApp("v2", client_id, client_secret, region.lower())
            self.apps[client_id] = app
            return app

    def add_v3_connector(
        self,
        app_id: str,
        client_id: str,
        client_secret: str,
        tenant: str = "common",
        scope: tuple[str, ...] | list[str] = (),
    ) -> NylasApp:
        """Test setup: the app's Microsoft connector (and its primary credential), as POST /v3/connectors."""
        with self._world.lock:
            app = self.apps[app_id]
            self.create_connector(app, "Microsoft", client_id, client_secret, tenant, list(scope))
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
        """(client id, secret) of the v3 connector's settings (its primary credential) or the v2 integration."""
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
        with self._world.lock:
            if app.kind == "v3":
                if app.has_connector:
                    tenant = str((app.settings or {}).get("tenant") or "common")
                    self.set_connector_settings(app, client_id, client_secret, tenant)
                else:
                    self.create_connector(app, app.connector_name, client_id, client_secret, "common", app.scope)
                return
            app.settings = {**(app.settings or {}), "client_id": client_id}
            self._held(app, client_id, client_secret)

    def _held(self, app: NylasApp, client_id: str, client_secret: str) -> None:
        app.client_secret = client_secret
        app.history.append(NylasHistoryEntry(self._world.clock.now(), client_id, client_secret[:3], client_secret))

    # -- v3 connector and credentials (callers hold the lock)
    def create_connector(
        self, app: NylasApp, name: str, client_id: str, client_secret: str, tenant: str, scope: list[str]
    ) -> NylasCredential:
        """The connector and its primary credential, which becomes the active credential."""
        app.connector_name = name
        app.scope = list(scope)
        app.settings = {"client_id": client_id, "tenant": tenant}
        data = {"client_id": client_id, "client_secret": client_secret, "tenant": tenant}
        primary = self.new_credential(app, PRIMARY_CREDENTIAL_NAME, "connector", data)
        app.primary_credential_id = primary.id
        app.active_credential_id = primary.id
        self._held(app, client_id, client_secret)
        return primary

    def set_connector_settings(self, app: NylasApp, client_id: str, client_secret: str, tenant: str) -> None:
        """PATCH of the connector's settings: replaced whole, and the primary credential with them."""
        app.settings = {"client_id": client_id, "tenant": tenant}
        data = {"client_id": client_id, "client_secret": client_secret, "tenant": tenant}
        primary = app.credentials.get(app.primary_credential_id or "")
        if primary is None:  # the primary credential was deleted (it was no longer the active one)
            taken = {c.name for c in app.credentials.values()}
            name = (
                PRIMARY_CREDENTIAL_NAME if PRIMARY_CREDENTIAL_NAME not in taken else f"primary-{uuid.uuid4().hex[:8]}"
            )
            app.primary_credential_id = self.new_credential(app, name, "connector", data).id
        else:
            primary.data = data
            primary.updated_at = unix(self._world.clock.now())
        self._held(app, client_id, client_secret)

    def delete_connector(self, app: NylasApp) -> None:
        """The connector goes with all its credentials; grants stay but can no longer refresh."""
        app.settings = None
        app.client_secret = None
        app.credentials.clear()
        app.active_credential_id = None
        app.primary_credential_id = None

    def new_credential(self, app: NylasApp, name: str, credential_type: str, data: dict[str, Any]) -> NylasCredential:
        now = unix(self._world.clock.now())
        self._seq += 1
        cred = NylasCredential(str(uuid.uuid4()), name, credential_type, now, now, self._seq, dict(data))
        app.credentials[cred.id] = cred
        return cred

    def update_credential(
        self, app: NylasApp, cred: NylasCredential, name: str | None, data: dict[str, Any] | None
    ) -> None:
        """PATCH of a credential: name and/or credential_data (replaced whole). The primary
        credential and the connector's settings move together."""
        if name is not None:
            cred.name = name
        if data is not None:
            cred.data = dict(data)
            if cred.id == app.primary_credential_id:
                app.settings = {"client_id": cred.client_id, "tenant": cred.tenant}
                self._held(app, cred.client_id, cred.client_secret)
        cred.updated_at = unix(self._world.clock.now())

    def credential(self, app_id: str, cred_id: str) -> tuple[str, str] | None:
        """(client id, client secret) Nylas holds in that credential now, or None."""
        with self._world.lock:
            app = self.apps.get(app_id)
            cred = app.credentials.get(cred_id) if app else None
            return (cred.client_id, cred.client_secret) if cred else None

    def credentials(self, app_id: str) -> list[dict[str, Any]]:
        """Every credential of the app's connector: id, name, credential_type, client_id (no secret)."""
        with self._world.lock:
            app = self.apps.get(app_id)
            if app is None:
                return []
            return [
                {"id": c.id, "name": c.name, "credential_type": c.credential_type, "client_id": c.client_id}
                for c in sorted(app.credentials.values(), key=lambda c: c.seq)
            ]

    # -- grants
    def grants(self, app_id: str) -> list[Grant]:
        with self._world.lock:
            app = self.apps.get(app_id)
            return list(app.grants.values()) if app else []

    def credential_for_grant(self, app: NylasApp, grant: Grant) -> NylasCredential | None:
        cred_id = grant.credential_id or app.active_credential_id
        return app.credentials.get(cred_id) if cred_id else None

    def refresh_grant(self, app_id: str, grant_id: str) -> tuple[bool, str]:
        """Nylas refreshing that user's Microsoft token now, with the client secret it holds now for
        the grant's credential (its credential_id, else the connector's active credential), through
        Entra's refresh-token grant in-process. Returns (ok, AADSTS code or a reason)."""
        with self._world.lock:
            app = self.apps.get(app_id)
            grant = app.grants.get(grant_id) if app else None
            if app is None or grant is None:
                return False, "grant-not-found"
            if not app.has_connector:
                result = (False, "connector-deleted")
            else:
                cred = self.credential_for_grant(app, grant)
                if cred is None:
                    result = (False, "credential-deleted")
                else:
                    outcome = self._world.entra.redeem_refresh(
                        tenant=cred.tenant,
                        refresh_token=grant.refresh_token,
                        client_id=cred.client_id,
                        client_secret=cred.client_secret,
                    )
                    if outcome.ok and outcome.body.get("refresh_token"):
                        grant.refresh_token = str(outcome.body["refresh_token"])
                    result = (outcome.ok, outcome.code)
            grant.last_refresh = result
            return result

    def secret_values(self) -> set[str]:
        found: set[str] = set()
        for app in self.apps.values():
            found.add(app.credential)
            found.update(h.secret for h in app.history)
            if app.client_secret:
                found.add(app.client_secret)
            for cred in app.credentials.values():
                found.update(str(cred.data[k]) for k in _CREDENTIAL_SECRET_KEYS if cred.data.get(k))
            found.update(g.refresh_token for g in app.grants.values() if g.refresh_token)
            found.update(app.access_tokens)
        found.update(self.codes)
        return found

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in self.apps.values():
            entry: dict[str, Any] = {
                "kind": a.kind,
                "region": a.region,
                "settings": a.settings,
                "hint": a.client_secret[:3] if a.client_secret else None,
                "scope": a.scope,
                "history": [{"time": iso(h.time), "client_id": h.client_id, "hint": h.hint} for h in a.history],
            }
            if a.kind == "v3":
                entry["active_credential_id"] = a.active_credential_id
                entry["credentials"] = [
                    {**c.to_json(), "client_id": c.client_id, "hint": c.client_secret[:3] or None}
                    for c in sorted(a.credentials.values(), key=lambda c: c.seq)
                ]
                entry["grants"] = [
                    {
                        "id": g.id,
                        "email": g.email,
                        "credential_id": g.credential_id,
                        "client_id": g.client_id,
                        "last_refresh": list(g.last_refresh) if g.last_refresh else None,
                    }
                    for g in a.grants.values()
                ]
            out[a.app_id] = entry
        return out


# ---------------------------------------------------------------- caller sign-in: the service's own API
#
# The app registration that stands for the service's HTTP API, as Entra knows it: its client id and
# Application ID URI (callers ask for ``<uri>/.default``), its app roles, which client apps hold which,
# and the RSA key Entra signs the API's access tokens with (published at
# /{tenant}/discovery/v2.0/keys). It is kept apart from GraphState.apps, so Graph listings and what
# other tests count stay as they were. Tokens are signed on the real clock, not the world's: the
# service checks exp and nbf on its own clock, as against Entra. Every token minted is a secret of
# the world (``secret_values``): the no-leak checks look for it in logs and answers.

CALLER_API_ROLES = ("Tenants.Read", "Tenants.Provision", "Rotations.Operate")
# The client a user's token names in azp unless told otherwise: the Azure CLI's public client id.
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
V1_ISSUER = "https://sts.windows.net/{tenant}/"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class SigningKey:
    """One of Entra's token signing keys: an RSA key and its self-signed certificate. Its kid is the
    certificate's SHA-1 thumbprint, base64url (as Entra's: kid and x5t agree)."""

    kid: str
    private_key: Any = field(repr=False)
    cert_der: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=5 * 365))
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(_b64url(hashlib.sha1(der).digest()), key, der)

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()

        def b64int(n: int) -> str:
            return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64int(numbers.n),
            "e": b64int(numbers.e),
            "x5c": [base64.b64encode(self.cert_der).decode()],
            "issuer": issuer,
        }


class CallerApiState:
    """The service's API registration, its role assignments and Entra's signing keys."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.app_id = str(uuid.uuid4())
        self.object_id = str(uuid.uuid4())
        self.sp_object_id = str(uuid.uuid4())
        self.display_name = "nylas-entra-rotator API"
        self.identifier_uri = f"api://{self.app_id}"
        self.app_roles = {value: stable_guid("app-role", value) for value in CALLER_API_ROLES}
        # The Entra emulator's own URL once it listens (EntraService sets it): the issuer's authority.
        self.authority = "https://login.microsoftonline.com"
        self._keys: list[SigningKey] = []
        self._active = 0
        self.assignments: dict[str, set[str]] = {}  # key: a client app id, lower case
        # The service principal's appRoleAssignmentRequired: without an assignment no app gets a
        # token (AADSTS501051). Entra's default is false: a token without roles.
        self.assignment_required = False
        self.token_version = 2  # the API's requestedAccessTokenVersion
        self._minted: set[str] = set()

    def clear(self) -> None:
        """Assignments, switches and minted tokens (world.reset). The registration and its first
        signing key stay (a service process caches the keys, as against Entra)."""
        with self._world.lock:
            self.assignments.clear()
            self.assignment_required = False
            self.token_version = 2
            self._minted.clear()
            del self._keys[1:]
            self._active = 0

    @property
    def audiences(self) -> tuple[str, str]:
        """What CALLER_AUTH_AUDIENCE names for this API: the Application ID URI and the client id."""
        return self.identifier_uri, self.app_id

    def matches(self, resource: str) -> bool:
        """Whether a scope's resource part (before /.default) names this API."""
        return resource.rstrip("/").lower() in {self.app_id.lower(), self.identifier_uri.lower()}

    # -- role assignments
    def assign(self, client_id: str, *roles: str) -> None:
        """Grant a client app (its client id) app roles of the API, as an admin consents to them."""
        unknown = [r for r in roles if r not in self.app_roles]
        if unknown:
            raise ValueError(f"unknown app roles {unknown}; the API defines {list(self.app_roles)}")
        with self._world.lock:
            self.assignments.setdefault(client_id.lower(), set()).update(roles)

    def roles_of(self, client_id: str) -> list[str]:
        with self._world.lock:
            return sorted(self.assignments.get(client_id.lower(), set()))

    def add_client(self, display_name: str = "API caller", *roles: str) -> tuple[str, str]:
        """A client app registered in this tenant (with its service principal and a client secret)
        holding ``roles`` of the API: returns (client id, client secret)."""
        app = self._world.graph.create_app("caller-admin", {"displayName": display_name}, service_principal=True)
        _, secret = self._world.graph.add_password_direct(app.object_id, "caller")
        self.assign(app.app_id, *roles)
        return app.app_id, secret

    def refusal(self, client_id: str) -> str | None:
        """The AADSTS code the token endpoint answers this client asking for the API, or None."""
        if self.assignment_required and not self.roles_of(client_id):
            return "AADSTS501051"
        return None

    # -- signing keys
    def _active_key(self) -> SigningKey:
        with self._world.lock:
            if not self._keys:
                self._keys.append(SigningKey.generate())
            return self._keys[self._active]

    def rotate_signing_key(self) -> str:
        """Entra rolls its key: a new one is published beside the old and signs from now on (its kid)."""
        with self._world.lock:
            self._active_key()
            self._keys.append(SigningKey.generate())
            self._active = len(self._keys) - 1
            return self._keys[self._active].kid

    def jwks(self) -> dict[str, Any]:
        """The keys document at /{tenant}/discovery/v2.0/keys."""
        self._active_key()
        issuer = f"{self.authority}/{self._world.entra.tenant_id}/v2.0"
        with self._world.lock:
            return {"keys": [k.jwk(issuer) for k in self._keys]}

    # -- tokens
    def app_token(
        self,
        client_id: str,
        *,
        audience: str | None = None,
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        age_seconds: int = 0,
        version: int | None = None,
    ) -> str:
        """An app-only access token for the API, as client_credentials with ``<uri>/.default`` gets
        one: the client's assigned roles, its service principal as oid and sub, idtyp app."""
        sp = self._world.graph.sp_by_app_id(client_id)
        oid = sp.object_id if sp is not None else stable_guid("service-principal", client_id)
        claims: dict[str, Any] = {"azp": client_id, "azpacr": "1", "oid": oid, "sub": oid, "idtyp": "app"}
        roles = self.roles_of(client_id)
        if roles:
            claims["roles"] = roles
        return self._mint(claims, audience, lifetime_seconds, age_seconds, version, None)

    def user_token(
        self,
        email: str,
        roles: tuple[str, ...] | list[str] = (),
        *,
        client_id: str = AZURE_CLI_CLIENT_ID,
        name: str | None = None,
        audience: str | None = None,
        tenant: str | None = None,
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        age_seconds: int = 0,
        version: int | None = None,
    ) -> str:
        """A signed-in person's access token for the API, holding the app roles given (as if assigned
        to them), issued to ``client_id`` (the Azure CLI unless told). ``audience``, ``tenant``,
        ``age_seconds`` (how long ago it was issued) and ``version`` make the tokens tests refuse."""
        user = self._world.entra.user_for_hint(email)
        display = name if name is not None else email.partition("@")[0]
        claims: dict[str, Any] = {
            "azp": client_id,
            "azpacr": "0",
            "name": display,
            "oid": user.object_id,
            "sub": _b64url(hashlib.sha256(f"{user.object_id}:{client_id}".encode()).digest())[:43],  # pairwise
            "preferred_username": email,
            "scp": "access_as_user",
        }
        if roles:
            claims["roles"] = list(roles)
        return self._mint(claims, audience, lifetime_seconds, age_seconds, version, tenant)

    def _mint(
        self,
        claims: dict[str, Any],
        audience: str | None,
        lifetime_seconds: int,
        age_seconds: int,
        version: int | None,
        tenant: str | None,
    ) -> str:
        import jwt

        version = version or self.token_version
        tid = tenant or self._world.entra.tenant_id
        now = int(time.time()) - int(age_seconds)
        body: dict[str, Any] = {
            "aud": audience or (self.app_id if version == 2 else self.identifier_uri),
            "iss": f"{self.authority}/{tid}/v2.0" if version == 2 else V1_ISSUER.format(tenant=tid),
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime_seconds),
            "tid": tid,
            "uti": secrets.token_urlsafe(16),
            "ver": "2.0" if version == 2 else "1.0",
            **claims,
        }
        if version != 2:  # v1 names the client appid/appidacr, and a person by upn and unique_name
            body["appid"], body["appidacr"] = body.pop("azp"), body.pop("azpacr")
            if "preferred_username" in body:
                body["upn"] = body["unique_name"] = body.pop("preferred_username")
        key = self._active_key()
        headers = {"kid": key.kid} if version == 2 else {"kid": key.kid, "x5t": key.kid}
        token = jwt.encode(body, key.private_key, algorithm="RS256", headers=headers)
        with self._world.lock:
            self._minted.add(token)
        return token

    def secret_values(self) -> set[str]:
        with self._world.lock:
            return set(self._minted)


# ---------------------------------------------------------------- publisher verification and operators' sign-in
#
# Issue 14. What Graph needs to set an app's verified publisher, and a person to do it:
# - operators: users of this directory who sign in with ``az login`` (delegated tokens), each with their
#   directory roles; setVerifiedPublisher wants Application Administrator, Cloud Application Administrator
#   or Global Administrator [PV2];
# - the directory's DNS-verified custom domains, and each app's publisher domain (a portal step: Graph's
#   publisherDomain is read-only) [PV2][PD];
# - Partner Center accounts: a Partner One (MPN) id, the publisher's name and the domain of the email used to
#   verify the account [PV1][PV2];
# - uploaded logos (PUT /applications/{id}/logo), kept beside the app, not in its JSON.
# Delegated tokens are JWT-shaped (header.claims.signature, the signature random: nobody here checks it) and
# are also entered in Entra's token table for the Azure CLI's client, so Graph's and Key Vault's existing
# checks accept them; their claims say who signed in (upn, oid, scp, wids, idtyp "user"). Every one is a
# secret of the world (``secret_values``).

# Role template ids (the 'wids' claim) of the directory roles that may set a verified publisher [PV2].
PUBLISHER_ROLES = {
    "Application Administrator": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "Cloud Application Administrator": "158c047a-c907-4556-b7ef-446551a6b5f7",
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
}
# The delegated Graph scopes of an Azure CLI token (guessed list; Application.ReadWrite.All is what counts).
AZURE_CLI_GRAPH_SCOPES = (
    "Application.ReadWrite.All",
    "AuditLog.Read.All",
    "Directory.AccessAsUser.All",
    "Group.ReadWrite.All",
    "User.ReadWrite.All",
)
_DELEGATED_RESOURCES = {GRAPH_RESOURCE, VAULT_RESOURCE}
# The portal's logo rules [BR]: .png, .jpg or .bmp, under 100 KB. Graph publishes none (guessed: the same).
LOGO_CONTENT_TYPES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff", "image/bmp": b"BM"}
MAX_LOGO_BYTES = 100 * 1024


@dataclass
class Operator:
    """A person of this directory who signs in with ``az login``."""

    upn: str
    object_id: str
    roles: set[str]  # directory role names (PUBLISHER_ROLES keys, or any other)


@dataclass
class PartnerAccount:
    """A Partner Center (Cloud Partner Program) account: its Partner One id, name and email domain [PV2]."""

    mpn_id: str
    display_name: str
    email_domain: str
    vetted: bool = True  # verification completed in Partner Center (else MPNAccountNotVetted)


@dataclass
class DelegatedGrant:
    """What a delegated token stands for: the person, the resource and the scopes."""

    upn: str
    object_id: str
    resource: str
    scopes: tuple[str, ...]


@dataclass
class StoredLogo:
    content_type: str
    data: bytes = field(repr=False)


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")

    signature = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("=")
    return f"{part({'typ': 'JWT', 'alg': 'RS256', 'kid': 'emulator'})}.{part(claims)}.{signature}"


class PublisherState:
    """Operators, verified domains, Partner Center accounts and logos (issue 14)."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.operators: dict[str, Operator] = {}  # key: lower-case UPN
        self.partners: dict[str, PartnerAccount] = {}  # key: the Partner One (MPN) id
        self.verified_domains: set[str] = set()  # lower case
        self.logos: dict[str, StoredLogo] = {}  # key: the app's object id
        self._grants: dict[str, DelegatedGrant] = {}  # key: the access token

    def clear(self) -> None:
        with self._world.lock:
            for token in self._grants:
                self._world.entra._tokens.pop(token, None)  # the Entra side of our delegated tokens
            self._grants.clear()
            self.operators.clear()
            self.partners.clear()
            self.verified_domains.clear()
            self.logos.clear()

    # -- directory, Partner Center, portal steps
    def add_operator(self, upn: str, roles: tuple[str, ...] | list[str] = ()) -> Operator:
        with self._world.lock:
            op = Operator(upn, stable_guid("operator", upn), set(roles))
            self.operators[upn.lower()] = op
            return op

    def add_partner(self, mpn_id: str, display_name: str, email_domain: str, *, vetted: bool = True) -> PartnerAccount:
        with self._world.lock:
            account = PartnerAccount(str(mpn_id), display_name, email_domain.lower(), vetted)
            self.partners[account.mpn_id] = account
            return account

    def verify_domain(self, domain: str) -> None:
        """A custom domain added to the directory and DNS-verified (portal: Custom domain names)."""
        with self._world.lock:
            self.verified_domains.add(domain.lower())

    def domain_verified(self, domain: str) -> bool:
        return domain.lower() in self.verified_domains

    def set_publisher_domain(self, object_id: str, domain: str) -> None:
        """The portal's "Update publisher domain" (App registrations > Branding & properties): the tenant's
        initial domain or a verified one [PD]. Graph cannot do it (publisherDomain is read-only)."""
        with self._world.lock:
            app = self._world.graph.apps[object_id]
            low = domain.lower()
            if low != self._world.entra.tenant_domain.lower() and not self.domain_verified(low):
                raise ValueError(f"{domain} is not a verified domain of this directory")
            app.data["publisherDomain"] = low

    # -- tokens
    def delegated_token(self, upn: str, resource: str) -> tuple[str, int]:
        """What ``az account get-access-token --resource R`` gives a signed-in operator: (token, expires_on)."""
        resource = resource.rstrip("/")
        if resource not in _DELEGATED_RESOURCES:
            raise ValueError(f"resource {resource} is not one the emulators serve")
        with self._world.lock:
            op = self.operators.get(upn.lower())
            if op is None:
                raise ValueError(f"{upn} is not an operator of this directory (add_operator first)")
            scopes = AZURE_CLI_GRAPH_SCOPES if resource == GRAPH_RESOURCE else ("user_impersonation",)
            now = int(time.time())
            claims = {
                "aud": resource,
                "iss": f"https://sts.windows.net/{self._world.entra.tenant_id}/",
                "iat": now,
                "nbf": now,
                "exp": now + TOKEN_LIFETIME_SECONDS,
                "appid": AZURE_CLI_CLIENT_ID,
                "app_displayname": "Microsoft Azure CLI",
                "idtyp": "user",
                "name": upn.partition("@")[0],
                "oid": op.object_id,
                "scp": " ".join(scopes),
                "tid": self._world.entra.tenant_id,
                "unique_name": upn,
                "upn": upn,
                "ver": "1.0",
                "wids": sorted(PUBLISHER_ROLES[r] for r in op.roles if r in PUBLISHER_ROLES),
            }
            token = _jwt(claims)
            self._world.entra._tokens[token] = IssuedToken(
                AZURE_CLI_CLIENT_ID, resource, time.monotonic() + TOKEN_LIFETIME_SECONDS
            )
            self._grants[token] = DelegatedGrant(upn, op.object_id, resource, scopes)
            return token, now + TOKEN_LIFETIME_SECONDS

    def service_principal_token(self, resource: str) -> tuple[str, int]:
        """What ``az login --service-principal`` as the service's identity gives: an app-only token, JWT-shaped
        (idtyp "app", roles, no scp)."""
        resource = resource.rstrip("/")
        if resource not in _DELEGATED_RESOURCES:
            raise ValueError(f"resource {resource} is not one the emulators serve")
        ident = self._world.identity
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self._world.entra.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "appid": ident.client_id,
            "app_displayname": "nylas-entra-rotator (service identity)",
            "idtyp": "app",
            "oid": ident.sp_object_id,
            "roles": ["Application.ReadWrite.OwnedBy"],
            "tid": self._world.entra.tenant_id,
            "ver": "1.0",
        }
        token = _jwt(claims)
        with self._world.lock:
            self._world.entra._tokens[token] = IssuedToken(
                ident.client_id, resource, time.monotonic() + TOKEN_LIFETIME_SECONDS
            )
            self._grants[token] = DelegatedGrant("", "", resource, ())  # tracked for clear(); not a person
        return token, now + TOKEN_LIFETIME_SECONDS

    def delegated(self, token: str) -> DelegatedGrant | None:
        """The person behind a token (None: an application's token, or none of ours)."""
        with self._world.lock:
            grant = self._grants.get(token)
            return grant if grant is not None and grant.upn else None

    def operator(self, upn: str) -> Operator | None:
        with self._world.lock:
            return self.operators.get(upn.lower())

    def secret_values(self) -> set[str]:
        with self._world.lock:
            return set(self._grants)


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
        self.caller_api = CallerApiState(self)  # caller sign-in (its own section above)
        self.publisher = PublisherState(self)  # publisher verification and operators (its own section above)
        self._defaults: tuple[float, float, int | None, bool] = (0.0, 0.0, None, True)
        self.identity = ServiceIdentity(
            self.entra.tenant_id,
            str(uuid.uuid4()),
            new_client_secret(),
            object_id=str(uuid.uuid4()),
            sp_object_id=str(uuid.uuid4()),
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

        Apps, secrets, Nylas apps (connectors, credentials, grants), Entra users and their codes and
        refresh tokens, faults, calls, latency, the Graph write quota and the clock offset are cleared;
        delays, the lifetime policy and purge protection return to the start-up options."""
        with self.lock:
            self.faults.clear()
            self.reset_calls()
            self.clock.reset()
            self.latency = 0.0
            self.graph.clear()
            self.keyvault.clear()
            self.nylas.clear()
            self.entra.clear_users()
            self.caller_api.clear()  # caller sign-in
            self.publisher.clear()  # publisher verification and operators
            self._apply_defaults()
            self._register_identity()

    def _register_identity(self) -> None:
        """The service's own app: owned by no one, with its service principal (so it gets tokens),
        a never-expiring secret, allowed into the vault."""
        ident = self.identity
        # Backdated so neither replication nor propagation delays ever apply to it.
        since = datetime(2000, 1, 1, tzinfo=UTC)
        name = "nylas-entra-rotator (service identity)"
        app = GraphApp(
            object_id=ident.object_id,
            app_id=ident.client_id,
            created=since,
            owners=set(),
            data=default_app_data(name, self.entra.tenant_domain),
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
        sp = ServicePrincipal(ident.sp_object_id or str(uuid.uuid4()), ident.client_id, name, since, set())
        self.graph.service_principals[sp.object_id] = sp
        self.keyvault.allowed_clients = {ident.client_id}

    def secret_values(self) -> set[str]:
        """Every secret value this world knows (Key Vault values, Entra passwords, Nylas API keys,
        connector and credential secrets, Nylas codes and access tokens, users' refresh tokens): what
        a no-leak check looks for in logs, alerts and output."""
        found: set[str] = set()
        with self.lock:
            for entry in self.keyvault.secrets.values():
                found.update(v.value for v in entry.versions)
            for app in self.graph.apps.values():
                found.update(p.secret for p in app.password_credentials)
            found.update(self.nylas.secret_values())
            found.update(self.entra.refresh_tokens())
            found.update(self.caller_api.secret_values())  # caller sign-in: access tokens minted
            found.update(self.publisher.secret_values())  # operators' delegated tokens
        return {s for s in found if s and len(s) >= 8}

    def nylas_secret_works(self, app_id: str) -> bool:
        """True iff Entra accepts the secret Nylas holds for app_id as a live, propagated secret of
        the Entra app it names (what Nylas's code and refresh-token redemptions need)."""
        held = self.nylas.current(app_id)
        if held is None:
            return False
        client_id, client_secret = held
        # Nylas redeems codes and refresh tokens (user grants): client authentication alone, no
        # client-credentials token, so no service principal is needed here.
        ok, _ = self.entra.client_works(client_id, client_secret)
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
                    "tenant_policy_id": self.graph.tenant_policy_id,
                    "replication_delay": self.graph.replication_delay,
                },
                "entra": {"propagation_delay": self.entra.propagation_delay},
                "keyvault": self.keyvault.snapshot(),
                "nylas": self.nylas.snapshot(),
                "faults": [f.to_json() for f in self.faults.pending()],
                "calls": dict(self.calls),
            }
