"""Admin API that steers the World from another process (same powers as the in-process API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._http import HttpError, Request, Response, Service, empty, json_response
from .world import TOKEN_LIFETIME_SECONDS, World, iso

_FAULT_KEYS = {
    "route",
    "status",
    "retry_after",
    "times",
    "latency",
    "drop",
    "phase",
    "error_code",
    "kill_pid",
    "skip",
    "html",
}


def _body(req: Request) -> dict[str, Any]:
    body = req.json()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise HttpError(400, "BadRequest", "Expected a JSON object.")
    return body


class ControlService(Service):
    name = "control"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.add("POST", r"/faults", "control.faults_inject", self.inject)
        self.add("GET", r"/faults", "control.faults_list", self.faults)
        self.add("DELETE", r"/faults", "control.faults_clear", self.clear)
        self.add("POST", r"/clock", "control.clock_advance", self.advance)
        self.add("GET", r"/clock", "control.clock_get", self.clock)
        self.add("GET", r"/calls", "control.calls_get", self.calls)
        self.add("POST", r"/calls/reset", "control.calls_reset", self.reset_calls)
        self.add("GET", r"/snapshot", "control.snapshot", self.snapshot)
        self.add("POST", r"/reset", "control.reset", self.reset)
        self.add("POST", r"/nylas/apps", "control.nylas_apps", self.nylas_app)
        self.add("GET", r"/nylas/apps/(?P<app_id>[^/]+)", "control.nylas_app_state", self.nylas_state)
        self.add("POST", r"/nylas/apps/(?P<app_id>[^/]+)/connector", "control.nylas_connector", self.nylas_connector)
        self.add(
            "POST",
            r"/nylas/apps/(?P<app_id>[^/]+)/grants/(?P<grant_id>[^/]+)/refresh",
            "control.nylas_refresh_grant",
            self.nylas_refresh,
        )
        self.add("POST", r"/entra/users", "control.entra_user", self.entra_user)
        self.add("POST", r"/graph/write_quota", "control.graph_write_quota", self.write_quota)
        self.add("POST", r"/graph/policy", "control.graph_policy", self.policy)
        self.add("POST", r"/graph/foreign_apps", "control.graph_foreign_app", self.foreign_app)
        self.add("POST", r"/graph/apps/(?P<oid>[^/]+)/passwords", "control.graph_add_password", self.add_password)
        self.add("POST", r"/switches", "control.switches", self.switches)
        self.add("POST", r"/delays", "control.delays", self.delays)
        self.add("POST", r"/latency", "control.latency", self.latency)
        self.add("GET", r"/health", "control.health", self.health)
        # Caller sign-in: the service's API registration, its callers and their tokens.
        self.add("GET", r"/caller-api", "control.caller_api", self.caller_api)
        self.add("POST", r"/caller-api", "control.caller_api_set", self.caller_api_set)
        self.add("POST", r"/caller-api/clients", "control.caller_api_client", self.caller_api_client)
        self.add("POST", r"/caller-api/user-tokens", "control.caller_api_user_token", self.caller_api_user_token)
        self.add("POST", r"/caller-api/signing-keys", "control.caller_api_rotate_key", self.caller_api_rotate_key)
        self._add_publisher_routes()  # publisher verification and operators' sign-in (its own section below)

    def inject(self, req: Request) -> Response:
        body = _body(req)
        unknown = set(body) - _FAULT_KEYS
        if unknown or "route" not in body:
            raise HttpError(400, "BadRequest", f"Fault needs 'route'; unknown keys: {sorted(unknown)}")
        route = str(body.pop("route"))
        try:
            self.world.faults.inject(route, **body)
        except (TypeError, ValueError) as err:
            raise HttpError(400, "BadRequest", str(err)) from None
        return json_response(201, {"faults": [f.to_json() for f in self.world.faults.pending()]})

    def faults(self, req: Request) -> Response:
        return json_response(200, {"faults": [f.to_json() for f in self.world.faults.pending()]})

    def clear(self, req: Request) -> Response:
        self.world.faults.clear()
        return empty(204)

    def _clock(self) -> dict[str, Any]:
        return {"now": iso(self.world.clock.now()), "offset_seconds": self.world.clock.offset_seconds}

    def advance(self, req: Request) -> Response:
        body = _body(req)
        self.world.clock.advance(seconds=float(body.get("advance_seconds", 0)), days=float(body.get("advance_days", 0)))
        return json_response(200, self._clock())

    def clock(self, req: Request) -> Response:
        return json_response(200, self._clock())

    def calls(self, req: Request) -> Response:
        return json_response(
            200, {"calls": dict(self.world.calls), "log": [list(entry) for entry in self.world.call_log]}
        )

    def reset_calls(self, req: Request) -> Response:
        self.world.reset_calls()
        return empty(204)

    def snapshot(self, req: Request) -> Response:
        return json_response(200, self.world.snapshot())

    def reset(self, req: Request) -> Response:
        self.world.reset()
        return empty(204)

    def nylas_app(self, req: Request) -> Response:
        body = _body(req)
        version, region = str(body.get("version", "v3")), str(body.get("region", "us"))
        if version == "v3" and body.get("app_id") and body.get("api_key"):
            self.world.nylas.add_v3_app(str(body["app_id"]), str(body["api_key"]), region)
            return json_response(201, {"app_id": body["app_id"], "version": "v3", "region": region})
        if version == "v2" and body.get("client_id") and body.get("client_secret"):
            self.world.nylas.add_v2_app(str(body["client_id"]), str(body["client_secret"]), region)
            return json_response(201, {"app_id": body["client_id"], "version": "v2", "region": region})
        raise HttpError(400, "BadRequest", "Need version v3 with app_id+api_key, or v2 with client_id+client_secret.")

    def nylas_state(self, req: Request, app_id: str) -> Response:
        if app_id not in self.world.nylas.apps:
            raise HttpError(404, "NotFound", f"No Nylas app {app_id}.")
        current = self.world.nylas.current(app_id)

        def entry(h: tuple[datetime, str, str]) -> dict[str, str]:
            return {"time": iso(h[0]), "client_id": h[1], "hint": h[2]}

        grants = [
            {
                "id": g.id,
                "email": g.email,
                "credential_id": g.credential_id,
                "client_id": g.client_id,
                "last_refresh": list(g.last_refresh) if g.last_refresh else None,
            }
            for g in self.world.nylas.grants(app_id)
        ]
        return json_response(
            200,
            {
                "client_id": current[0] if current else None,
                "hint": current[1][:3] if current else None,
                "secret_works": self.world.nylas_secret_works(app_id),
                "history": [entry(h) for h in self.world.nylas.history(app_id)],
                "active_credential_id": self.world.nylas.apps[app_id].active_credential_id,
                "credentials": self.world.nylas.credentials(app_id),
                "grants": grants,
            },
        )

    def nylas_connector(self, req: Request, app_id: str) -> Response:
        body = _body(req)
        app = self.world.nylas.apps.get(app_id)
        if app is None or app.kind != "v3":
            raise HttpError(404, "NotFound", f"No Nylas v3 app {app_id}.")
        if app.has_connector:
            raise HttpError(409, "Conflict", f"Nylas app {app_id} already has a Microsoft connector.")
        if not body.get("client_id") or not body.get("client_secret"):
            raise HttpError(400, "BadRequest", "Need client_id and client_secret.")
        self.world.nylas.add_v3_connector(
            app_id,
            str(body["client_id"]),
            str(body["client_secret"]),
            str(body.get("tenant") or "common"),
            [str(s) for s in body.get("scope") or []],
        )
        return json_response(201, {"app_id": app_id, "active_credential_id": app.active_credential_id})

    def nylas_refresh(self, req: Request, app_id: str, grant_id: str) -> Response:
        ok, code = self.world.nylas.refresh_grant(app_id, grant_id)
        return json_response(200, {"ok": ok, "code": code})

    def entra_user(self, req: Request) -> Response:
        body = _body(req)
        if not body.get("email"):
            raise HttpError(400, "BadRequest", "Need email.")
        try:
            user = self.world.entra.add_user(
                str(body["email"]), str(body.get("kind", "work")), body.get("home_tenant") or None
            )
        except ValueError as err:
            raise HttpError(400, "BadRequest", str(err)) from None
        return json_response(201, {"email": user.email, "kind": user.kind, "home_tenant": user.home_tenant})

    def write_quota(self, req: Request) -> Response:
        body = _body(req)
        graph = self.world.graph
        if "limit" in body:
            graph.personal_write_limit = None if body["limit"] is None else int(body["limit"])
        if "window_seconds" in body:
            graph.personal_write_window_seconds = float(body["window_seconds"])
        return json_response(
            200,
            {
                "limit": graph.personal_write_limit,
                "window_seconds": graph.personal_write_window_seconds,
                "writes": graph.personal_write_count,
                "throttled": graph.throttled_count,
            },
        )

    def policy(self, req: Request) -> Response:
        body = _body(req)
        value = body.get("lifetime_max_days")
        self.world.graph.lifetime_policy_max_days = int(value) if value is not None else None
        return json_response(
            200,
            {"lifetime_max_days": self.world.graph.lifetime_policy_max_days, "id": self.world.graph.tenant_policy_id},
        )

    def foreign_app(self, req: Request) -> Response:
        body = _body(req)
        app = self.world.graph.add_foreign_app(
            str(body.get("display_name", "someone else's app")),
            owner=str(body.get("owner", "someone-else")),
            unique_name=body.get("unique_name"),
            service_principal=bool(body.get("service_principal", True)),
        )
        return json_response(201, {"id": app.object_id, "appId": app.app_id})

    def switches(self, req: Request) -> Response:
        """World switches that change how a service answers (reset() turns them off again)."""
        body = _body(req)
        known = {"keyvault_empty_pages", "graph_sp_denied_while_replicating"}
        if set(body) - known:
            raise HttpError(400, "BadRequest", f"Unknown switches: {sorted(set(body) - known)}")
        kv, graph = self.world.keyvault, self.world.graph
        if "keyvault_empty_pages" in body:
            kv.empty_pages = bool(body["keyvault_empty_pages"])
        if "graph_sp_denied_while_replicating" in body:
            graph.sp_denied_while_replicating = bool(body["graph_sp_denied_while_replicating"])
        return json_response(
            200,
            {
                "keyvault_empty_pages": kv.empty_pages,
                "graph_sp_denied_while_replicating": graph.sp_denied_while_replicating,
            },
        )

    def add_password(self, req: Request, oid: str) -> Response:
        body = _body(req)
        if oid not in self.world.graph.apps:
            raise HttpError(404, "NotFound", f"No application {oid}.")
        end = datetime.fromisoformat(str(body["end"]).replace("Z", "+00:00")) if body.get("end") else None
        # Emulator-only: the secret is returned so a harness can play "someone else's" client.
        key_id, secret = self.world.graph.add_password_direct(oid, body.get("display_name"), end)
        return json_response(201, {"keyId": key_id, "secretText": secret})

    def delays(self, req: Request) -> Response:
        body = _body(req)
        if "graph_replication" in body:
            self.world.graph.replication_delay = float(body["graph_replication"])
        if "entra_propagation" in body:
            self.world.entra.propagation_delay = float(body["entra_propagation"])
        return json_response(
            200,
            {
                "graph_replication": self.world.graph.replication_delay,
                "entra_propagation": self.world.entra.propagation_delay,
            },
        )

    def latency(self, req: Request) -> Response:
        self.world.latency_all(float(_body(req).get("seconds", 0)))
        return json_response(200, {"seconds": self.world.latency})

    def health(self, req: Request) -> Response:
        return json_response(200, {"status": "ok"})

    # -- caller sign-in: the service's API registration (world.caller_api)
    def _caller_api_view(self) -> dict[str, Any]:
        api = self.world.caller_api
        return {
            "app_id": api.app_id,
            "identifier_uri": api.identifier_uri,
            "tenant_id": self.world.entra.tenant_id,
            "app_roles": dict(api.app_roles),
            "assignments": {client: sorted(roles) for client, roles in api.assignments.items()},
            "assignment_required": api.assignment_required,
            "token_version": api.token_version,
        }

    def caller_api(self, req: Request) -> Response:
        return json_response(200, self._caller_api_view())

    def caller_api_set(self, req: Request) -> Response:
        """Switches of the API registration: assignment_required, token_version (1 or 2)."""
        body = _body(req)
        unknown = set(body) - {"assignment_required", "token_version"}
        if unknown:
            raise HttpError(400, "BadRequest", f"Unknown keys: {sorted(unknown)}")
        api = self.world.caller_api
        if "assignment_required" in body:
            api.assignment_required = bool(body["assignment_required"])
        if "token_version" in body:
            if body["token_version"] not in (1, 2):
                raise HttpError(400, "BadRequest", "token_version must be 1 or 2.")
            api.token_version = int(body["token_version"])
        return json_response(200, self._caller_api_view())

    def caller_api_client(self, req: Request) -> Response:
        """A client app holding app roles of the API. Emulator-only: its secret is returned so a
        harness can get tokens with it (client_credentials)."""
        body = _body(req)
        roles = body.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise HttpError(400, "BadRequest", "roles must be a list of app role values.")
        try:
            client_id, secret = self.world.caller_api.add_client(str(body.get("display_name") or "API caller"), *roles)
        except ValueError as err:
            raise HttpError(400, "BadRequest", str(err)) from None
        return json_response(201, {"client_id": client_id, "client_secret": secret, "roles": sorted(set(roles))})

    def caller_api_user_token(self, req: Request) -> Response:
        """A signed-in person's access token for the API with the roles asked (no password page here)."""
        body = _body(req)
        if not body.get("email"):
            raise HttpError(400, "BadRequest", "Need email.")
        roles = body.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise HttpError(400, "BadRequest", "roles must be a list of strings.")
        options: dict[str, Any] = {}
        for key in ("client_id", "name", "audience", "tenant"):
            if body.get(key) is not None:
                options[key] = str(body[key])
        for key in ("lifetime_seconds", "age_seconds", "version"):
            if body.get(key) is not None:
                options[key] = int(body[key])
        token = self.world.caller_api.user_token(str(body["email"]), list(roles), **options)
        lifetime = options.get("lifetime_seconds", TOKEN_LIFETIME_SECONDS)
        return json_response(200, {"token_type": "Bearer", "expires_in": lifetime, "access_token": token})

    def caller_api_rotate_key(self, req: Request) -> Response:
        """Entra rolls its signing key: a new one is published and signs from now on."""
        return json_response(201, {"kid": self.world.caller_api.rotate_signing_key()})

    # -- publisher verification and operators' sign-in (world.publisher, issue 14)
    def _add_publisher_routes(self) -> None:
        self.add("POST", r"/publisher/operators", "control.publisher_operator", self.publisher_operator)
        self.add("POST", r"/publisher/partners", "control.publisher_partner", self.publisher_partner)
        self.add("POST", r"/publisher/domains", "control.publisher_domain", self.publisher_domain)
        self.add(
            "POST",
            r"/publisher/apps/(?P<oid>[^/]+)/publisher-domain",
            "control.publisher_app_domain",
            self.publisher_app_domain,
        )
        self.add("GET", r"/publisher/apps/(?P<oid>[^/]+)", "control.publisher_app", self.publisher_app)
        self.add("POST", r"/publisher/tokens", "control.publisher_token", self.publisher_token)

    def publisher_operator(self, req: Request) -> Response:
        """A person of this directory who may sign in with az login, with directory roles."""
        body = _body(req)
        roles = body.get("roles") or []
        if not body.get("upn") or not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise HttpError(400, "BadRequest", "Need upn, and roles as a list of directory role names.")
        op = self.world.publisher.add_operator(str(body["upn"]), roles)
        return json_response(201, {"upn": op.upn, "objectId": op.object_id, "roles": sorted(op.roles)})

    def publisher_partner(self, req: Request) -> Response:
        """A Partner Center account: Partner One (MPN) id, publisher name, the domain of its verified email."""
        body = _body(req)
        if not body.get("mpn_id") or not body.get("display_name") or not body.get("email_domain"):
            raise HttpError(400, "BadRequest", "Need mpn_id, display_name and email_domain.")
        account = self.world.publisher.add_partner(
            str(body["mpn_id"]),
            str(body["display_name"]),
            str(body["email_domain"]),
            vetted=bool(body.get("vetted", True)),
        )
        return json_response(201, {"mpn_id": account.mpn_id, "vetted": account.vetted})

    def publisher_domain(self, req: Request) -> Response:
        """A custom domain of the directory, DNS-verified (the portal's Custom domain names)."""
        body = _body(req)
        if not body.get("domain"):
            raise HttpError(400, "BadRequest", "Need domain.")
        self.world.publisher.verify_domain(str(body["domain"]))
        return json_response(201, {"verified_domains": sorted(self.world.publisher.verified_domains)})

    def publisher_app_domain(self, req: Request, oid: str) -> Response:
        """The portal's "Update publisher domain" for one app (Graph cannot: publisherDomain is read-only)."""
        body = _body(req)
        if oid not in self.world.graph.apps:
            raise HttpError(404, "NotFound", f"No application {oid}.")
        try:
            self.world.publisher.set_publisher_domain(oid, str(body.get("domain") or ""))
        except ValueError as err:
            raise HttpError(400, "BadRequest", str(err)) from None
        return json_response(200, {"publisherDomain": self.world.graph.apps[oid].data["publisherDomain"]})

    def publisher_app(self, req: Request, oid: str) -> Response:
        """What people see of an app at consent, and its logo's type, size and SHA-256 (not the image)."""
        app = self.world.graph.apps.get(oid)
        if app is None:
            raise HttpError(404, "NotFound", f"No application {oid}.")
        logo = self.world.publisher.logos.get(oid)
        return json_response(
            200,
            {
                "publisherDomain": app.data.get("publisherDomain"),
                "verifiedPublisher": app.data.get("verifiedPublisher"),
                "info": app.data.get("info"),
                "tags": app.data.get("tags"),
                "logo": (
                    {"contentType": logo.content_type, "size": len(logo.data), "sha256": _sha256(logo.data)}
                    if logo
                    else None
                ),
            },
        )

    def publisher_token(self, req: Request) -> Response:
        """What ``az account get-access-token --output json --resource R`` prints for a signed-in operator
        (``upn``), or for the service's identity signed in as a service principal (``service_principal``: true).
        For a fake az on PATH: the same JSON shape (accessToken, expiresOn local, expires_on epoch, ...)."""
        body = _body(req)
        resource = str(body.get("resource") or "")
        try:
            if body.get("service_principal"):
                token, expires = self.world.publisher.service_principal_token(resource)
            else:
                token, expires = self.world.publisher.delegated_token(str(body.get("upn") or ""), resource)
        except ValueError as err:
            raise HttpError(400, "BadRequest", str(err)) from None
        return json_response(
            200,
            {
                "accessToken": token,
                "expiresOn": datetime.fromtimestamp(expires).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "expires_on": expires,
                "subscription": "00000000-0000-0000-0000-000000000000",
                "tenant": self.world.entra.tenant_id,
                "tokenType": "Bearer",
            },
        )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
