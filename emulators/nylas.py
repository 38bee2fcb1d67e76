"""Nylas: the v3 Microsoft connector and the v2 Microsoft integration.

Both hold the Entra client id and client secret Nylas uses for Microsoft
accounts. The held secret is private to the World (history keeps only hints
outside the World) and is never echoed in responses.
"""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from typing import Any

from ._http import HttpError, Request, Response, Service, json_response, retry_after_value
from .world import Fault, NylasApp, World

_V2_PREFIX = "/connect/integrations/"


class NylasService(Service):
    name = "nylas"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.add("GET", r"/v3/connectors/microsoft", "nylas.v3_get_connector", self.v3_get)
        self.add("PATCH", r"/v3/connectors/microsoft", "nylas.v3_patch_connector", self.v3_patch)
        self.add("GET", r"/connect/integrations/microsoft", "nylas.v2_get_integration", self.v2_get)
        self.add("PATCH", r"/connect/integrations/microsoft", "nylas.v2_patch_integration", self.v2_patch)

    # -- wire formats: v3 {"request_id","error":{"type","message"}}; v2 {"message","type"}
    def error_response(
        self, req: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        if req.path.startswith(_V2_PREFIX):
            return json_response(status, {"message": message, "type": code}, headers)
        return json_response(
            status, {"request_id": str(uuid.uuid4()), "error": {"type": code, "message": message}}, headers
        )

    def default_code(self, status: int) -> str:
        return {
            400: "invalid_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found_error",
            429: "rate_limit_error",
        }.get(status, "api_error" if status >= 500 else "invalid_request")

    def fault_response(self, req: Request, route_id: str, fault: Fault) -> Response:
        resp = super().fault_response(req, route_id, fault)
        if req.path.startswith(_V2_PREFIX) and (fault.status or 500) == 429:
            # Nylas v2 tells clients when the rate-limit window resets, in whole seconds.
            resp.headers["X-RateLimit-Reset"] = str(math.ceil(fault.retry_after or 1))
            resp.headers.setdefault("Retry-After", retry_after_value(fault.retry_after or 1))
        return resp

    def unknown_route(self, req: Request) -> Response:
        return self.error_response(req, 404, "not_found_error", f"Route {req.method} {req.path} not found.")

    # -- v3
    def _v3_app(self, req: Request) -> NylasApp:
        auth = req.header("Authorization")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        app = self.world.nylas.by_api_key(key) if key else None
        if app is None:
            raise HttpError(401, "unauthorized", "Unauthorized. Invalid or missing API key.")
        return app

    def _v3_data(self, app: NylasApp) -> dict[str, Any]:
        settings = {k: v for k, v in (app.settings or {}).items() if k != "client_secret"}
        return {"name": "Microsoft", "provider": "microsoft", "settings": settings, "scope": list(app.scope)}

    def v3_get(self, req: Request) -> Response:
        app = self._v3_app(req)
        if app.settings is None:
            raise HttpError(404, "not_found_error", "Connector not found for provider 'microsoft'.")
        return json_response(200, {"request_id": str(uuid.uuid4()), "data": self._v3_data(app)})

    def v3_patch(self, req: Request) -> Response:
        app = self._v3_app(req)
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid_request", "Request body must be a JSON object.")
        settings = body.get("settings")
        client_id, client_secret = _client_pair(settings, "settings")
        scope = body.get("scope", app.scope)
        if not isinstance(scope, list) or any(not isinstance(s, str) for s in scope):
            raise HttpError(400, "invalid_request", "scope must be an array of strings.")
        assert isinstance(settings, dict)
        tenant = settings.get("tenant") or "common"
        # PATCH replaces the settings object wholesale (the v3 API does not merge settings).
        app.settings = {"client_id": client_id, "tenant": tenant}
        app.scope = list(scope)
        self.world.nylas.record(app, client_id, client_secret)
        return json_response(200, {"request_id": str(uuid.uuid4()), "data": self._v3_data(app)})

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
        raise HttpError(400, "invalid_request", f"{where} is required.")
    client_id, client_secret = settings.get("client_id"), settings.get("client_secret")
    if not isinstance(client_id, str) or not client_id:
        raise HttpError(400, "invalid_request", f"{where}.client_id is required.")
    if not isinstance(client_secret, str) or not client_secret:
        raise HttpError(400, "invalid_request", f"{where}.client_secret is required.")
    return client_id, client_secret
