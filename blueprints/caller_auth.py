"""Callers sign in with Entra ID: an access token for the service's own API, and one app role per route.

``requires(role)`` wraps each HTTP handler (blueprints/http_api.py). Before the handler runs, and so
before any Key Vault, Graph, Nylas, queue or storage call, it checks the request:

1. ``CALLER_AUTH=function-key``: nothing more (the Functions host checked the key; routes keep auth
   level FUNCTION). The rest is ``CALLER_AUTH=entra``, the default.
2. ``Authorization: Bearer <token>``; without one, 401.
3. Cheap checks of the token's claims before its signature (``ver``, ``aud``, ``exp``): a token that
   fails them is refused without fetching keys. Refusing on claims not yet verified is safe; nothing
   is ever granted on them.
4. The signing key named by ``kid``, from the directory's OpenID configuration
   (``{authority}/{tenant}/v2.0/.well-known/openid-configuration`` → ``jwks_uri``). Keys are cached
   for a day; a ``kid`` not in the cache fetches the keys again, at most once every 5 minutes (Entra
   publishes a new key weeks before signing with it; a flood of made-up kids costs one call per 5
   minutes, not one per request).
5. PyJWT checks the RS256 signature and ``exp``/``nbf``/``iat`` (5 minutes of clock skew, as
   Microsoft's own libraries allow); then ``aud`` must be one of ``CALLER_AUTH_AUDIENCE`` (the API's
   client id, as v2.0 tokens carry it, or its Application ID URI, as v1.0 tokens may; both forms are
   accepted), ``iss`` must be ``{authority}/{tenant}/v2.0`` for a v2.0 token or
   ``https://sts.windows.net/{tenant}/`` for a v1.0 token (the API's ``requestedAccessTokenVersion``
   decides which it gets), and ``tid`` the directory. Any failure: 401 ``unauthorized`` with
   ``WWW-Authenticate: Bearer ..., error="invalid_token"``.
6. The route's app role in ``roles`` (assigned to the calling app, or to the signed-in person);
   without it, 403 ``forbidden`` naming the role (``requiredRole``). Delegated scopes (``scp``) grant
   nothing here.

The handler then runs inside ``core.audit.acting_for(identity)``: the caller (``user:<upn> oid:<oid>``
or ``app:<client id> oid:<oid>``, never token content) is on every log record it makes and on every
Key Vault version it writes (tag ``requested-by``).

Why the app validates tokens itself rather than App Service Authentication (Easy Auth) in front:
each route needs its own app role, which Easy Auth cannot require (it only tells signed-in from
anonymous, so the roles would be checked here anyway, from a header Easy Auth adds); refusals keep
this API's JSON error shape and the RFC 6750 ``WWW-Authenticate`` challenge (Easy Auth answers with
its own body, or a redirect to a sign-in page, outside the OpenAPI document); the exact claims
checked (audience forms, v1/v2 issuers, tenant) are in code and tested against the Entra emulator
over HTTPS, while Easy Auth runs only in Azure, so no test here could show it refusing; and one code
path serves Azure, ``func start`` and the tests (``CALLER_AUTH`` switches it off for local runs).

The Functions host's own key check (read at import, ``ROUTE_AUTH_LEVEL``): with ``CALLER_AUTH=entra``
set in the app settings the routes are registered with auth level ANONYMOUS, so a caller needs a
token and no key (a function key is a shared secret with no identity: asking for both would bring
back what sign-in removes). Any other value, or none at all, keeps auth level FUNCTION: the key is
dropped only when the token check is known to be on, never by accident; unset, a caller needs both.
If the process ever ran with function-key settings behind anonymous routes, every request would
answer 503 rather than go unchecked.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import azure.functions as func

from blueprints.http_errors import error_response, to_response
from bootstrap import services
from core.audit import acting_for, app_identity, user_identity
from core.errors import DependencyRejected, DependencyUnavailable
from core.settings import Settings, SettingsError

if TYPE_CHECKING:
    import requests

log = logging.getLogger("http.auth")

# The API's app roles (docs/openapi.yaml names them per operation).
TENANTS_READ = "Tenants.Read"  # GET /api/tenants, GET /api/tenants/{tenant}
TENANTS_PROVISION = "Tenants.Provision"  # POST /api/tenants, DELETE and PATCH /api/tenants/{tenant}
ROTATIONS_OPERATE = "Rotations.Operate"  # POST .../rotate, POST .../rotation/confirm
ROLES = (TENANTS_READ, TENANTS_PROVISION, ROTATIONS_OPERATE)

ENTRA = "entra"
FUNCTION_KEY = "function-key"
DEPENDENCY = "entra-id"
V1_ISSUER = "https://sts.windows.net/{tenant}/"
LEEWAY_SECONDS = 300
KEYS_MAX_AGE_SECONDS = 24 * 3600
REFETCH_INTERVAL_SECONDS = 300
MAX_TOKEN_CHARS = 16_384
ROLE_ATTRIBUTE = "required_role"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)

HttpHandler = Callable[[func.HttpRequest], func.HttpResponse]


def route_auth_level(env: Mapping[str, str] | None = None) -> func.AuthLevel:
    """ANONYMOUS only when ``CALLER_AUTH=entra`` is set (the app checks tokens), else FUNCTION."""
    env = os.environ if env is None else env
    explicit = env.get("CALLER_AUTH", "").strip().lower()
    return func.AuthLevel.ANONYMOUS if explicit == ENTRA else func.AuthLevel.FUNCTION


ROUTE_AUTH_LEVEL = route_auth_level()


@dataclass(frozen=True)
class Caller:
    """Who a validated token speaks for."""

    identity: str  # core.audit's short form: what logs and the requested-by tag carry
    kind: str  # "user" or "app"
    object_id: str
    client_id: str  # azp (v2.0) or appid (v1.0): the application that asked for the token
    roles: frozenset[str]


class Refused(Exception):
    """A request turned away: 401 (no valid token) or 403 (valid token, role missing)."""

    def __init__(
        self, status: int, message: str, *, error: str | None = None, role: str | None = None, caller: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error  # RFC 6750 error code for WWW-Authenticate (none when no token was sent)
        self.role = role
        self.caller = caller
        self.challenge = "Bearer"

    def response(self) -> func.HttpResponse:
        header = self.challenge
        if self.error:
            header += f', error="{self.error}", error_description="{self.message}"'
        headers = {"WWW-Authenticate": header}
        if self.status == 401:
            return error_response(401, "unauthorized", self.message, "Authorization", headers=headers)
        return error_response(403, "forbidden", self.message, None, headers=headers, requiredRole=self.role)


def _invalid(message: str) -> Refused:
    return Refused(401, message, error="invalid_token")


def audience_forms(audiences: Iterable[str]) -> frozenset[str]:
    """Every spelling a token's ``aud`` may use for the configured API (compared in lower case): the
    values given, an Application ID URI with and without a trailing slash, and the client id and
    ``api://<client id>`` for each other (Entra lets only that app use ``api://`` with its own id)."""
    out: set[str] = set()
    for raw in audiences:
        value = raw.strip().lower()
        if not value:
            continue
        out.add(value)
        if _GUID.fullmatch(value):
            out.update({f"api://{value}", f"api://{value}/"})
            continue
        out.add(value.rstrip("/"))
        out.add(value.rstrip("/") + "/")
        rest = value.removeprefix("api://").rstrip("/")
        if value.startswith("api://") and _GUID.fullmatch(rest):
            out.add(rest)
    return frozenset(out)


class TokenValidator:
    """Validates Entra access tokens for one API in one directory; caches the directory's keys.

    ``clock`` (monotonic seconds) paces the key fetches; ``now`` (Unix time) is what exp/nbf are
    checked against. Thread-safe: the Functions worker runs handlers on a thread pool."""

    def __init__(
        self,
        authority: str,
        tenant: str,
        audiences: Iterable[str],
        *,
        ca_bundle: str = "",
        timeout: float = 10.0,
        refetch_interval: float = REFETCH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.tenant = tenant
        self.audiences = audience_forms(audiences)
        if not self.audiences:
            raise SettingsError("setting CALLER_AUTH_AUDIENCE is required when CALLER_AUTH is entra")
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.refetch_interval = refetch_interval
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._session: requests.Session | None = None  # PyJWT and requests load on first use: cold start
        self._directory_id = tenant.lower() if _GUID.fullmatch(tenant) else ""
        self._jwks_uri = ""
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None

    @property
    def challenge(self) -> str:
        """What ``WWW-Authenticate`` says before any error: where to get a token, and for what."""
        parts = ['realm=""', f'authorization_uri="{self.authority}/{self.tenant}/oauth2/v2.0/authorize"']
        client = next((a for a in sorted(self.audiences) if _GUID.fullmatch(a)), "")
        if client:
            parts.append(f'client_id="{client}"')
        return "Bearer " + ", ".join(parts)

    def validate(self, token: str) -> Caller:
        import jwt

        if len(token) > MAX_TOKEN_CHARS:
            raise _invalid("the access token is too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid("the access token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise _invalid("the access token is not signed with RS256")
        version = unverified.get("ver")
        if version not in ("1.0", "2.0"):
            raise _invalid("the access token is not an Entra access token (ver)")
        if not self._audience_ok(unverified.get("aud")):
            raise _invalid("the access token is for another API (aud)")
        exp = unverified.get("exp")
        if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS <= self._now():
            raise _invalid("the access token has expired")
        kid = header.get("kid") or header.get("x5t")
        if not isinstance(kid, str) or not kid:
            raise _invalid("the access token names no signing key (kid)")
        key = self._key(kid)
        if key is None:
            raise _invalid("the access token is signed with a key the directory does not publish")
        claims = self._verified(token, key)
        if not self._audience_ok(claims.get("aud")):
            raise _invalid("the access token is for another API (aud)")
        directory = self._directory()
        issuer = f"{self.authority}/{directory}/v2.0" if version == "2.0" else V1_ISSUER.format(tenant=directory)
        if str(claims.get("iss", "")).lower() != issuer.lower() or claims.get("ver") != version:
            raise _invalid("the access token was not issued by this directory's authority (iss)")
        if str(claims.get("tid", "")).lower() != directory:
            raise _invalid("the access token was issued for another directory (tid)")
        return self._caller(claims)

    def _verified(self, token: str, key: Any) -> dict[str, Any]:
        import jwt

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "nbf", "iat", "iss", "aud", "tid", "oid"],
                    "verify_aud": False,  # checked by _audience_ok: both forms, any letter case
                    "verify_iss": False,  # checked against the token's version
                },
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the access token is not valid yet (nbf, iat)") from None
        except jwt.InvalidSignatureError:
            raise _invalid("the access token's signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"the access token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise _invalid("the access token is not valid") from None
        return claims

    def _audience_ok(self, aud: Any) -> bool:
        values = aud if isinstance(aud, list) else [aud]
        return any(isinstance(v, str) and v.lower() in self.audiences for v in values)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        oid = claims.get("oid")
        roles = claims.get("roles", [])
        if not isinstance(oid, str) or not oid:
            raise _invalid("the access token names no object (oid)")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _invalid("the access token's roles are malformed")
        client = str(claims.get("azp") or claims.get("appid") or "")
        idtyp = claims.get("idtyp")
        # idtyp is the reliable mark (an optional claim, sent for app tokens); without it, an app
        # token has no scp and its sub is its oid.
        app = idtyp == "app" or (idtyp is None and "scp" not in claims and claims.get("sub") == oid)
        if app:
            return Caller(app_identity(client, oid), "app", oid, client, frozenset(roles))
        name = next((str(claims[k]) for k in ("upn", "preferred_username", "unique_name", "name") if claims.get(k)), "")
        return Caller(user_identity(name, oid), "user", oid, client, frozenset(roles))

    # -- the directory's keys
    def _key(self, kid: str) -> Any | None:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > KEYS_MAX_AGE_SECONDS
            unknown = kid not in self._keys
            may_retry = self._tried_at is None or now - self._tried_at >= self.refetch_interval
            if (stale or unknown) and (may_retry or self._fetched_at is None):
                self._refresh(now)
            return self._keys.get(kid)

    def _directory(self) -> str:
        with self._lock:
            if not self._directory_id:
                self._discover()
            return self._directory_id

    def _refresh(self, now: float) -> None:
        self._tried_at = now
        try:
            if not self._jwks_uri:
                self._discover()
            keys = _parse_jwks(self._get_json(self._jwks_uri, "signing keys"))
        except (DependencyUnavailable, DependencyRejected) as exc:
            if self._keys:
                log.warning("could not refresh the directory's signing keys; the cached ones stay: %s", exc.message)
                return
            raise
        self._keys = keys
        self._fetched_at = now
        log.info("read the directory's signing keys", extra={"keys": len(keys)})

    def _discover(self) -> None:
        url = f"{self.authority}/{self.tenant}/v2.0/.well-known/openid-configuration"
        config = self._get_json(url, "OpenID configuration")
        issuer, jwks_uri = str(config.get("issuer", "")), str(config.get("jwks_uri", ""))
        prefix = f"{self.authority}/"
        directory = issuer[len(prefix) : -len("/v2.0")].lower() if issuer.lower().startswith(prefix.lower()) else ""
        if not issuer.endswith("/v2.0") or not _GUID.fullmatch(directory):
            raise DependencyRejected(DEPENDENCY, f"the OpenID configuration names an unexpected issuer {issuer[:99]!r}")
        if self._directory_id and directory != self._directory_id:
            raise DependencyRejected(DEPENDENCY, f"the OpenID configuration is for another directory ({directory})")
        if not jwks_uri.lower().startswith(prefix.lower()):
            raise DependencyRejected(DEPENDENCY, "the OpenID configuration's jwks_uri is not on the authority")
        self._directory_id, self._jwks_uri = directory, jwks_uri

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        import requests

        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.get(
                url, timeout=self.timeout, verify=self.ca_bundle or True, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise DependencyUnavailable(DEPENDENCY, f"could not read the {what}: {exc.__class__.__name__}") from None
        status = response.status_code
        if status != 200:
            kind = DependencyUnavailable if status == 429 or status >= 500 else DependencyRejected
            raise kind(DEPENDENCY, f"reading the {what} answered {status}", status=status)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise DependencyUnavailable(DEPENDENCY, f"the {what} is not a JSON object")
        return body


def _parse_jwks(document: dict[str, Any]) -> dict[str, Any]:
    """RSA signing keys by kid (and x5t, which Entra sets to the same thumbprint)."""
    import jwt

    keys: dict[str, Any] = {}
    for entry in document.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm="RS256").key
        except jwt.PyJWTError:
            continue
        for name in (entry.get("kid"), entry.get("x5t")):
            if isinstance(name, str) and name:
                keys[name] = key
    return keys


_validators: dict[tuple[object, ...], TokenValidator] = {}
_validators_lock = threading.Lock()


def validator_for(settings: Settings) -> TokenValidator:
    """The process's validator for these settings (its key cache lives as long as the process)."""
    key = (
        settings.authority_host,
        settings.caller_auth_tenant_id,
        settings.caller_auth_audiences,
        settings.ca_bundle,
        settings.http_timeout_seconds,
    )
    with _validators_lock:
        found = _validators.get(key)
        if found is None:
            found = TokenValidator(
                settings.authority_host,
                settings.caller_auth_tenant_id,
                settings.caller_auth_audiences,
                ca_bundle=settings.ca_bundle,
                timeout=float(min(settings.http_timeout_seconds, 10)),
            )
            _validators[key] = found
        return found


def forget_validators() -> None:
    """Drop every cached validator and its keys (tests: a cold start)."""
    with _validators_lock:
        _validators.clear()


def bearer_token(req: func.HttpRequest) -> str:
    header = str(req.headers.get("Authorization") or "")
    if not header.strip():
        raise Refused(401, "sign in: send an Entra ID access token for this API as Authorization: Bearer <token>")
    matched = _BEARER.fullmatch(header.strip())
    if matched is None:
        raise Refused(401, "the Authorization header must be Bearer <access token>", error="invalid_request")
    return matched.group(1)


def authorize(req: func.HttpRequest, role: str) -> Caller | None:
    """The caller, if the request may run with ``role``; None when callers are checked by function
    key (CALLER_AUTH=function-key). Raises Refused (401/403), or SettingsError when misconfigured."""
    settings = services().settings
    if settings.caller_auth == FUNCTION_KEY:
        if ROUTE_AUTH_LEVEL == func.AuthLevel.ANONYMOUS:
            raise SettingsError(
                "CALLER_AUTH is function-key but the HTTP routes were registered anonymous (CALLER_AUTH "
                "was entra when the app started): restart the app so the host checks function keys again"
            )
        return None
    settings.require_caller_auth()
    validator = validator_for(settings)
    try:
        caller = validator.validate(bearer_token(req))
        if role not in caller.roles:
            raise Refused(
                403,
                f"this operation needs the app role {role}, which the caller does not hold",
                error="insufficient_scope",
                role=role,
                caller=caller.identity,
            )
    except Refused as refused:
        refused.challenge = validator.challenge
        raise
    return caller


def requires(role: str) -> Callable[[HttpHandler], HttpHandler]:
    """Wrap an HTTP handler so it runs only for a caller holding ``role`` (see the module doc), and
    on that caller's behalf (core.audit). The handler's body is left as it is."""
    if role not in ROLES:
        raise ValueError(f"unknown app role {role!r}; the API defines {ROLES}")

    def decorate(handler: HttpHandler) -> HttpHandler:
        @functools.wraps(handler)
        def guarded(req: func.HttpRequest) -> func.HttpResponse:
            try:
                caller = authorize(req, role)
            except Refused as refused:
                level = logging.WARNING if refused.status == 403 else logging.INFO
                log.log(
                    level,
                    "caller refused (%s): %s",
                    refused.status,
                    refused.message,
                    extra={"operation": handler.__name__, "status": refused.status, "refused_caller": refused.caller},
                )
                return refused.response()
            except Exception as exc:
                return to_response(exc)
            if caller is None:
                return handler(req)
            with acting_for(caller.identity):
                log.info(
                    "caller authorized for %s (%s)",
                    handler.__name__,
                    role,
                    extra={"operation": handler.__name__, "role": role, "caller_kind": caller.kind},
                )
                return handler(req)

        guarded.__dict__[ROLE_ATTRIBUTE] = role
        return guarded

    return decorate


def required_role(handler: Any) -> str | None:
    """The app role ``requires`` put on a handler (through any wrappers, or the FunctionBuilder a
    blueprint's decorators leave in its place), or None."""
    seen: Any = handler
    function = getattr(seen, "_function", None)  # azure.functions' FunctionBuilder
    if function is not None and hasattr(function, "get_user_function"):
        seen = function.get_user_function()
    while seen is not None:
        role = getattr(seen, ROLE_ATTRIBUTE, None)
        if isinstance(role, str):
            return role
        seen = getattr(seen, "__wrapped__", None)
    return None
