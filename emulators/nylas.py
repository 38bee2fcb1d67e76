"""Nylas: the v3 Microsoft connector, its credentials and hosted auth; the v2 Microsoft integration.

v3: an application starts without a Microsoft connector; ``POST /v3/connectors`` makes one, with a
primary credential that becomes the connector's ``active_credential_id`` [N3][N9]. More credentials
live under ``/v3/connectors/microsoft/creds`` [N5]-[N8]. Hosted auth (``/v3/connect/auth`` ->
Microsoft -> ``/v3/connect/callback`` -> the app's redirect URI -> ``/v3/connect/token``) makes grants
[NP][NJ][N9]; Nylas redeems Microsoft's code in-process with the client id and secret it holds for
the credential at that moment.

v2: the integration holds the Entra client id and secret.

Secrets stay private to the World (history keeps only hints outside it) and are never echoed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ._http import HttpError, Request, Response, Service, json_response, retry_after_value
from .world import (
    NYLAS_CREDENTIAL_TYPES,
    NYLAS_V3_CALLBACKS,
    Fault,
    Grant,
    NylasApp,
    NylasAuthSession,
    NylasCode,
    NylasCredential,
    World,
    unix,
)

_V2_PREFIX = "/connect/integrations/"
_TOKEN_PATH = "/v3/connect/token"
_ERROR_URI = "https://developer.nylas.com/docs/api/errors/400-response/"
# v3 error types [N10] ("match the suffix": some examples omit the "api." prefix).
AUTHENTICATION_ERROR = "api.authentication_error"
INVALID_REQUEST = "api.invalid_request_error"
NOT_FOUND = "api.not_found_error"
CREDS_LIMIT_DEFAULT = 10  # [N7]
CREDS_LIMIT_MAX = 200  # the Python SDK's list docstring [NP]; the API page gives no maximum
NYLAS_CODE_LIFETIME_SECONDS = 600  # guessed
_OIDC = ("openid", "profile", "email", "offline_access")
_ALWAYS = ("offline_access", "openid", "profile")  # what Nylas asks Microsoft for besides the scopes


def _not_found(what: str) -> HttpError:
    return HttpError(404, NOT_FOUND, what)


def _bad(message: str) -> HttpError:
    return HttpError(400, INVALID_REQUEST, message)


def _no_connector() -> HttpError:
    return _not_found("Connector not found for provider 'microsoft'.")


class NylasService(Service):
    name = "nylas"

    def __init__(self, world: World, entra_base: Callable[[], str] | None = None) -> None:
        super().__init__(world)
        # Where Microsoft's sign-in page lives (the Entra emulator when started together).
        self._entra_base = entra_base or (lambda: "https://login.microsoftonline.com")
        connector = r"/v3/connectors/microsoft"
        creds = connector + r"/creds"
        self.add("POST", r"/v3/connectors", "nylas.v3_create_connector", self.v3_create)
        self.add("GET", connector, "nylas.v3_get_connector", self.v3_get)
        self.add("PATCH", connector, "nylas.v3_patch_connector", self.v3_patch)
        self.add("DELETE", connector, "nylas.v3_delete_connector", self.v3_delete)
        self.add("GET", creds, "nylas.v3_list_credentials", self.creds_list)
        self.add("POST", creds, "nylas.v3_create_credential", self.creds_create)
        self.add("GET", creds + r"/(?P<cred_id>[^/]+)", "nylas.v3_get_credential", self.creds_get)
        self.add("PATCH", creds + r"/(?P<cred_id>[^/]+)", "nylas.v3_patch_credential", self.creds_patch)
        self.add("DELETE", creds + r"/(?P<cred_id>[^/]+)", "nylas.v3_delete_credential", self.creds_delete)
        self.add("GET", r"/v3/connect/auth", "nylas.v3_connect_auth", self.connect_auth)
        self.add("GET", r"/v3/connect/callback", "nylas.v3_connect_callback", self.connect_callback)
        self.add("POST", _TOKEN_PATH, "nylas.v3_connect_token", self.connect_token)
        self.add("GET", r"/connect/integrations/microsoft", "nylas.v2_get_integration", self.v2_get)
        self.add("PATCH", r"/connect/integrations/microsoft", "nylas.v2_patch_integration", self.v2_patch)

    # -- wire formats: v3 {"request_id","error":{"type","message"}}; the token endpoint
    # {"error","error_code","error_description","error_uri"}; v2 {"message","type"}
    def error_response(
        self, req: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        if req.path.startswith(_V2_PREFIX):
            return json_response(status, {"message": message, "type": code}, headers)
        if req.path == _TOKEN_PATH:
            body = {"error": code, "error_code": status, "error_description": message, "error_uri": _ERROR_URI}
            return json_response(status, body, headers)
        return json_response(
            status, {"request_id": str(uuid.uuid4()), "error": {"type": code, "message": message}}, headers
        )

    def default_code(self, status: int) -> str:
        return {
            400: INVALID_REQUEST,
            401: AUTHENTICATION_ERROR,
            403: "api.forbidden_error",
            404: NOT_FOUND,
            423: "api.resource_blocked",
            429: "api.rate_limit_error",
            504: "api.provider_error",
        }.get(status, "api.internal_error" if status >= 500 else INVALID_REQUEST)

    def fault_response(self, req: Request, route_id: str, fault: Fault) -> Response:
        if req.path.startswith(_V2_PREFIX):
            status = fault.status or 500
            code = fault.error_code or {400: "invalid_request_error", 404: "not_found_error"}.get(
                status, "rate_limit_error" if status == 429 else "api_error"
            )
            fault = Fault(fault.route, status, fault.retry_after, error_code=code)
        resp = super().fault_response(req, route_id, fault)
        if req.path.startswith(_V2_PREFIX) and (fault.status or 500) == 429:
            # Nylas v2 tells clients when the rate-limit window resets, in whole seconds.
            resp.headers["X-RateLimit-Reset"] = str(math.ceil(fault.retry_after or 1))
            resp.headers.setdefault("Retry-After", retry_after_value(fault.retry_after or 1))
        return resp

    def unknown_route(self, req: Request) -> Response:
        code = "not_found_error" if req.path.startswith(_V2_PREFIX) else NOT_FOUND
        return self.error_response(req, 404, code, f"Route {req.method} {req.path} not found.")

    # -- v3 plumbing
    def _v3_app(self, req: Request) -> NylasApp:
        auth = req.header("Authorization")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        app = self.world.nylas.by_api_key(key) if key else None
        if app is None:
            raise HttpError(401, AUTHENTICATION_ERROR, "Unauthorized. Invalid or missing API key.")
        return app

    def _connected(self, req: Request) -> NylasApp:
        app = self._v3_app(req)
        if not app.has_connector:
            raise _no_connector()
        return app

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise _bad("Request body must be a JSON object.")
        return body

    @staticmethod
    def _ok(status: int, data: Any = None) -> Response:
        body: dict[str, Any] = {"request_id": str(uuid.uuid4())}
        if data is not None:
            body["data"] = data
        return json_response(status, body)

    @staticmethod
    def _connector_json(app: NylasApp) -> dict[str, Any]:
        settings = {k: v for k, v in (app.settings or {}).items() if k != "client_secret"}
        return {
            "name": app.connector_name,
            "provider": "microsoft",
            "settings": settings,
            "scope": list(app.scope),
            "active_credential_id": app.active_credential_id,
        }

    # -- v3 connector
    def v3_create(self, req: Request) -> Response:
        app = self._v3_app(req)
        body = self._body(req)
        provider = body.get("provider")
        if not isinstance(provider, str) or not provider:
            raise _bad("provider is required.")
        if provider != "microsoft":
            raise _bad(f"Provider '{provider}' is not supported by this emulator.")
        if app.has_connector:
            # Guessed: one connector per provider; the API documents only 400/401 for create.
            raise _bad("A connector for provider 'microsoft' already exists.")
        client_id, client_secret = _client_pair(body.get("settings"), "settings")
        scope = _scope_list(body.get("scope", []))
        name = body.get("name", "Microsoft")
        if not isinstance(name, str) or not name:
            raise _bad("name must be a non-empty string.")
        tenant = _tenant(body["settings"])
        self.world.nylas.create_connector(app, name, client_id, client_secret, tenant, scope)
        return self._ok(201, self._connector_json(app))

    def v3_get(self, req: Request) -> Response:
        return self._ok(200, self._connector_json(self._connected(req)))

    def v3_patch(self, req: Request) -> Response:
        app = self._connected(req)
        body = self._body(req)
        nylas = self.world.nylas
        scope = _scope_list(body["scope"]) if "scope" in body else None
        active = body.get("active_credential_id")
        if active is not None and (not isinstance(active, str) or active not in app.credentials):
            raise _bad(f"active_credential_id '{active}' is not a credential of this connector.")
        if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
            raise _bad("name must be a non-empty string.")
        if "settings" in body:
            # Nested objects are replaced whole [N4]: client id and secret must come together.
            client_id, client_secret = _client_pair(body["settings"], "settings")
            nylas.set_connector_settings(app, client_id, client_secret, _tenant(body["settings"]))
        if scope is not None:
            app.scope = scope
        if active is not None:
            app.active_credential_id = active
        if "name" in body:
            app.connector_name = body["name"]
        return self._ok(200, self._connector_json(app))

    def v3_delete(self, req: Request) -> Response:
        app = self._connected(req)
        self.world.nylas.delete_connector(app)
        return self._ok(200)

    # -- v3 credentials
    def _credential(self, app: NylasApp, cred_id: str) -> NylasCredential:
        cred = app.credentials.get(cred_id)
        if cred is None:
            raise _not_found(f"Credential '{cred_id}' not found.")
        return cred

    def creds_list(self, req: Request) -> Response:
        app = self._connected(req)
        limit = _int_param(req, "limit", CREDS_LIMIT_DEFAULT)
        offset = _int_param(req, "offset", 0)
        if not 1 <= limit <= CREDS_LIMIT_MAX:
            raise _bad(f"limit must be between 1 and {CREDS_LIMIT_MAX}.")
        if offset < 0:
            raise _bad("offset must not be negative.")
        sort_by = req.q("sort_by") or "created_at"
        order_by = req.q("order_by") or "desc"
        if sort_by not in ("created_at", "updated_at"):
            raise _bad("sort_by must be created_at or updated_at.")
        if order_by not in ("desc", "asc"):
            raise _bad("order_by must be desc or asc.")
        ordered = sorted(
            app.credentials.values(),
            key=lambda c: (c.created_at if sort_by == "created_at" else c.updated_at, c.seq),
            reverse=order_by == "desc",
        )
        page = [c.to_json() for c in ordered[offset : offset + limit]]
        return json_response(200, {"request_id": str(uuid.uuid4()), "data": page, "limit": limit, "offset": offset})

    def creds_create(self, req: Request) -> Response:
        app = self._connected(req)
        body = self._body(req)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("name is required.")
        credential_type = body.get("credential_type")
        if credential_type not in NYLAS_CREDENTIAL_TYPES:
            raise _bad(f"credential_type must be one of {', '.join(NYLAS_CREDENTIAL_TYPES)}.")
        data = _credential_data(body.get("credential_data"), str(credential_type))
        same_name = next((c for c in app.credentials.values() if c.name == name), None)
        if same_name is not None:
            if same_name.credential_type == credential_type and same_name.data == data:
                # "If one with the same parameters exists, Nylas uses it instead" [N5].
                return self._ok(201, same_name.to_json())
            raise _bad(f"A credential with the name '{name}' already exists.")
        cred = self.world.nylas.new_credential(app, name, str(credential_type), data)
        return self._ok(201, cred.to_json())

    def creds_get(self, req: Request, cred_id: str) -> Response:
        app = self._connected(req)
        return self._ok(200, self._credential(app, cred_id).to_json())

    def creds_patch(self, req: Request, cred_id: str) -> Response:
        app = self._connected(req)
        cred = self._credential(app, cred_id)
        body = self._body(req)
        name = body.get("name")
        if name is not None:
            if not isinstance(name, str) or not name:
                raise _bad("name must be a non-empty string.")
            if any(c.name == name and c.id != cred.id for c in app.credentials.values()):
                raise _bad(f"A credential with the name '{name}' already exists.")
        data = None
        if "credential_data" in body:
            # Replaced whole [N8]: client id, secret (and tenant) together.
            data = _credential_data(body["credential_data"], cred.credential_type)
        self.world.nylas.update_credential(app, cred, name, data)
        return self._ok(200, cred.to_json())

    def creds_delete(self, req: Request, cred_id: str) -> Response:
        app = self._connected(req)
        cred = self._credential(app, cred_id)
        if cred.id == app.active_credential_id:
            raise _bad("You can't delete the connector's active credential.")
        del app.credentials[cred.id]
        if cred.id == app.primary_credential_id:
            app.primary_credential_id = None
        return self._ok(200)

    # -- v3 hosted auth
    def connect_auth(self, req: Request) -> Response:
        q = {k: v[0] for k, v in req.query.items()}
        for param in ("client_id", "redirect_uri", "response_type"):
            if not q.get(param):
                raise _bad(f"Missing required parameter: {param}.")
        app = self.world.nylas.apps.get(q["client_id"])
        if app is None or app.kind != "v3":
            raise _bad(f"Invalid client_id '{q['client_id']}'.")
        if q["response_type"] != "code":
            raise _bad(f"response_type '{q['response_type']}' is not supported by this emulator.")
        provider = q.get("provider")
        if not provider:
            return _html(200, "Nylas", "Choose a provider to sign in with (the emulator has no chooser).")
        if provider != "microsoft":
            raise _bad(f"Provider '{provider}' is not supported by this emulator.")
        if len(q.get("state", "")) > 256:
            raise _bad("state must be at most 256 characters.")
        if not app.has_connector:
            raise _no_connector()
        asked = q.get("credential_id") or None
        cred_id = asked or app.active_credential_id or ""
        cred = app.credentials.get(cred_id)
        if cred is None:
            raise _not_found(f"Credential '{cred_id}' not found.")
        if cred.credential_type != "connector":
            raise _bad(f"Credential '{cred_id}' is not a connector credential.")
        scopes = _entra_scopes(q["scope"].split() if q.get("scope") else app.scope)
        nylas_state = secrets.token_urlsafe(24)
        self.world.nylas.sessions[nylas_state] = NylasAuthSession(
            app_id=app.app_id,
            credential_id=asked,
            used_credential_id=cred.id,
            redirect_uri=q["redirect_uri"],
            state=q.get("state"),
            scopes=scopes,
            access_type=q.get("access_type", "online"),
            created=self.world.clock.now(),
        )
        params = {
            "client_id": cred.client_id,
            "response_type": "code",
            "redirect_uri": NYLAS_V3_CALLBACKS[app.region],
            "response_mode": "query",
            "scope": " ".join(scopes),
            "state": nylas_state,
        }
        if q.get("login_hint"):
            params["login_hint"] = q["login_hint"]
        location = f"{self._entra_base()}/{cred.tenant}/oauth2/v2.0/authorize?{urlencode(params)}"
        return Response(302, b"", {"Location": location})

    def connect_callback(self, req: Request) -> Response:
        q = {k: v[0] for k, v in req.query.items()}
        session = self.world.nylas.sessions.pop(q.get("state", ""), None)
        if session is None:
            raise _bad("Invalid or expired state.")
        app = self.world.nylas.apps.get(session.app_id)
        if app is None:
            raise _bad("Invalid or expired state.")

        def back(params: dict[str, str]) -> Response:
            if session.state is not None:
                params["state"] = session.state
            return _redirect(session.redirect_uri, params)

        if q.get("error"):
            # Microsoft refused the sign-in: passed on to the application (guessed shape).
            app.provider_errors.append((self.world.clock.now(), _aadsts(q.get("error_description", "")) or q["error"]))
            return back({"error": q["error"], "error_description": q.get("error_description", "")})
        cred = app.credentials.get(session.used_credential_id)
        if cred is None:
            outcome_code = "credential-deleted"
        else:
            outcome = self.world.entra.redeem_code(
                tenant=cred.tenant,
                code=q.get("code", ""),
                client_id=cred.client_id,
                client_secret=cred.client_secret,
                redirect_uri=NYLAS_V3_CALLBACKS[app.region],
            )
            outcome_code = outcome.code
            if outcome.ok and outcome.body.get("refresh_token"):
                grant = self._grant(app, session, cred, outcome.email, str(outcome.body["refresh_token"]))
                code = secrets.token_urlsafe(32)
                self.world.nylas.codes[code] = NylasCode(
                    app.app_id, grant.id, session.redirect_uri, session.access_type, self.world.clock.now()
                )
                return back({"code": code})
        # What Nylas tells the app when Microsoft will not redeem the code [Nylas forum, see docs].
        app.provider_errors.append((self.world.clock.now(), outcome_code or "no-refresh-token"))
        return back(
            {
                "error": "provider_code_request_failed",
                "error_code": "45001",
                "error_description": "Provider refused to return refresh_token using code",
            }
        )

    def _grant(
        self, app: NylasApp, session: NylasAuthSession, cred: NylasCredential, email: str, refresh: str
    ) -> Grant:
        """A new grant, or the same grant re-authenticated when this email already has one [NP]."""
        now = unix(self.world.clock.now())
        grant = next((g for g in app.grants.values() if g.email.lower() == email.lower()), None)
        if grant is None:
            grant = Grant(str(uuid.uuid4()), email, session.credential_id, "microsoft", cred.client_id, [], now, now)
            app.grants[grant.id] = grant
        grant.credential_id = session.credential_id
        grant.client_id = cred.client_id
        grant.scopes = list(session.scopes)
        grant.refresh_token = refresh
        grant.updated_at = now
        return grant

    def connect_token(self, req: Request) -> Response:
        form = _form_or_json(req)
        grant_type = form.get("grant_type", "")
        for param in ("client_id", "client_secret", "grant_type"):
            if not form.get(param):
                raise HttpError(400, "invalid_request", f"Missing required parameter: {param}")
        if grant_type != "authorization_code":
            raise HttpError(400, "unsupported_grant_type", f"grant_type '{grant_type}' is not supported.")
        for param in ("code", "redirect_uri"):
            if not form.get(param):
                raise HttpError(400, "invalid_request", f"Missing required parameter: {param}")
        app = self.world.nylas.apps.get(form["client_id"])
        if app is None or app.kind != "v3" or not secrets.compare_digest(app.credential, form["client_secret"]):
            raise HttpError(400, "unauthorized_access", "Invalid API key.")
        issued = self.world.nylas.codes.get(form["code"])
        age = (self.world.clock.now() - issued.issued).total_seconds() if issued else 0.0
        if (
            issued is None
            or issued.used
            or issued.app_id != app.app_id
            or issued.redirect_uri != form["redirect_uri"]
            or age > NYLAS_CODE_LIFETIME_SECONDS
        ):
            raise HttpError(400, "exchange_failed", "OAuth 2.0 token exchange failed.")
        grant = app.grants.get(issued.grant_id)
        if grant is None:
            raise HttpError(400, "exchange_failed", "OAuth 2.0 token exchange failed.")
        issued.used = True
        access = "nyl_at_" + secrets.token_urlsafe(32)
        app.access_tokens[access] = grant.id
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": " ".join(grant.scopes),
            "grant_id": grant.id,
            "email": grant.email,
            "provider": "microsoft",
        }
        if issued.access_type == "offline":
            refresh = "nyl_rt_" + secrets.token_urlsafe(32)
            app.access_tokens[refresh] = grant.id
            body["refresh_token"] = refresh
        return json_response(200, body, {"Cache-Control": "no-store"})

    # -- v2
    def _v2_app(self, req: Request) -> NylasApp:
        auth = req.header("Authorization")
        app = None
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            app = self.world.nylas.by_v2_credentials(user, password)
        if app is None:
            raise HttpError(401, "api_error", "Could not verify access credential.")
        return app

    def _v2_body(self, app: NylasApp) -> dict[str, Any]:
        settings = {k: v for k, v in (app.settings or {}).items() if k != "client_secret"}
        return {
            "name": app.extra.get("name", "Microsoft"),
            "provider": "microsoft",
            "settings": settings,
            "redirect_uris": app.extra.get("redirect_uris", []),
            "scope": list(app.scope),
            "expires_in": app.extra.get("expires_in", 1209600),
        }

    def v2_get(self, req: Request) -> Response:
        app = self._v2_app(req)
        if app.settings is None:
            raise HttpError(404, "not_found_error", "Integration not found for provider microsoft.")
        return json_response(200, self._v2_body(app))

    def v2_patch(self, req: Request) -> Response:
        app = self._v2_app(req)
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_request_error", "Request body must be a JSON object.")
        try:
            client_id, client_secret = _client_pair(body.get("settings"), "settings")
        except HttpError as err:
            raise HttpError(400, "invalid_request_error", err.message) from None
        settings = body["settings"]
        for key in ("name", "redirect_uris", "expires_in"):
            if key in body:
                app.extra[key] = body[key]
        if "scope" in body:
            if not isinstance(body["scope"], list):
                raise HttpError(400, "invalid_request_error", "scope must be a list of strings.")
            app.scope = [str(s) for s in body["scope"]]
        app.settings = {k: v for k, v in settings.items() if k != "client_secret"}
        self.world.nylas.record(app, client_id, client_secret)
        return json_response(200, self._v2_body(app))


def _client_pair(settings: Any, where: str) -> tuple[str, str]:
    if not isinstance(settings, dict):
        raise _bad(f"{where} is required.")
    client_id, client_secret = settings.get("client_id"), settings.get("client_secret")
    if not isinstance(client_id, str) or not client_id:
        raise _bad(f"{where}.client_id is required.")
    if not isinstance(client_secret, str) or not client_secret:
        raise _bad(f"{where}.client_secret is required.")
    return client_id, client_secret


def _tenant(settings: dict[str, Any]) -> str:
    tenant = settings.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise _bad("settings.tenant must be a string.")
    return tenant or "common"


def _scope_list(value: Any) -> list[str]:
    if not isinstance(value, list) or any(not isinstance(s, str) for s in value):
        raise _bad("scope must be an array of strings.")
    return list(value)


def _credential_data(value: Any, credential_type: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise _bad("credential_data is required.")
    if credential_type == "connector":
        _client_pair(value, "credential_data")
        if "tenant" in value and not isinstance(value["tenant"], str):
            raise _bad("credential_data.tenant must be a string.")
    return dict(value)


def _int_param(req: Request, name: str, default: int) -> int:
    raw = req.q(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer.") from None


def _entra_scopes(requested: list[str]) -> list[str]:
    """What Nylas asks Microsoft for: Graph scopes fully qualified (a bare name is Graph's [N12]), plus
    offline_access, openid and profile."""
    out: list[str] = []
    for scope in [*requested, *_ALWAYS]:
        qualified = scope if scope in _OIDC or "/" in scope else f"https://graph.microsoft.com/{scope}"
        if qualified not in out:
            out.append(qualified)
    return out


def _aadsts(description: str) -> str:
    head = description.split(":", 1)[0].strip()
    return head if head.startswith("AADSTS") else ""


def _form_or_json(req: Request) -> dict[str, str]:
    """The token endpoint takes application/json or application/x-www-form-urlencoded [NP]."""
    if "json" in req.header("Content-Type").lower():
        try:
            body = json.loads(req.body or b"{}")
        except json.JSONDecodeError:
            raise HttpError(400, "invalid_request", "Invalid JSON payload format.") from None
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_request", "Invalid JSON payload format.")
        return {k: str(v) for k, v in body.items() if v is not None}
    return {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _redirect(uri: str, params: dict[str, str]) -> Response:
    joiner = "&" if urlsplit(uri).query else "?"
    return Response(302, b"", {"Location": f"{uri}{joiner}{urlencode(params)}"})


def _html(status: int, title: str, text: str) -> Response:
    page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><p>{text}</p></body></html>"
    return Response(status, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
