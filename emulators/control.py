"""Admin API that steers the World from another process (same powers as the in-process API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._http import HttpError, Request, Response, Service, empty, json_response
from .world import World, iso

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
