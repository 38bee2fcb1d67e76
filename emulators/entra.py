"""Microsoft Entra ID token service (v2.0 endpoints), client-credentials only.

Decisions come from the shared World: a client secret is accepted only if it
is a live, propagated password credential of the Graph app whose appId is the
client id, exactly like Entra validates against the directory.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs

from ._http import Request, Response, Service, json_response, retry_after_value
from .world import GRAPH_RESOURCE, GRAPH_RESOURCE_ID, TOKEN_LIFETIME_SECONDS, VAULT_RESOURCE, Fault, World

# AADSTS code -> (OAuth error, HTTP status, description template)
_ERRORS: dict[str, tuple[str, int, str]] = {
    "AADSTS90002": (
        "invalid_request",
        400,
        "Tenant '{tenant}' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud.",
    ),
    "AADSTS700016": (
        "unauthorized_client",
        400,
        "Application with identifier '{client_id}' was not found in the "
        "directory '{tenant}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have sent your "
        "authentication request to the wrong tenant.",
    ),
    "AADSTS7000215": (
        "invalid_client",
        401,
        "Invalid client secret provided. Ensure the secret being sent in the "
        "request is the client secret value, not the client secret ID, for a secret added to app "
        "'{client_id}'.",
    ),
    "AADSTS7000222": (
        "invalid_client",
        401,
        "The provided client secret keys for app '{client_id}' are expired. "
        "Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
        "consider using certificate credentials for added security: https://aka.ms/certCreds.",
    ),
    "AADSTS900144": ("invalid_request", 400, "The request body must contain the following parameter: '{param}'."),
    "AADSTS70003": ("unsupported_grant_type", 400, "The app requested an unsupported grant type '{grant}'."),
    "AADSTS500011": (
        "invalid_resource",
        400,
        "The resource principal named {resource} was not found in the tenant "
        "named {tenant}. This can happen if the application has not been installed by the administrator "
        "of the tenant or consented to by any user in the tenant.",
    ),
    "AADSTS1002012": (
        "invalid_scope",
        400,
        "The provided value for scope {scope} is not valid. Client credential "
        "flows must have a scope value with /.default suffixed to the resource identifier.",
    ),
}

_RESOURCES = {
    GRAPH_RESOURCE: GRAPH_RESOURCE,
    GRAPH_RESOURCE_ID: GRAPH_RESOURCE,
    "https://graph.microsoft.com/": GRAPH_RESOURCE,
    VAULT_RESOURCE: VAULT_RESOURCE,
    "https://vault.azure.net/": VAULT_RESOURCE,
    "cfa8b339-82a2-471a-a3c9-0fc0be7a4093": VAULT_RESOURCE,
}


class EntraService(Service):
    name = "entra"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.add(
            "GET",
            r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration",
            "entra.openid_configuration",
            self.openid_configuration,
        )
        self.add("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", "entra.token", self.token)

    # -- error format
    def _aadsts(self, code: str, **fmt: str) -> Response:
        error, status, template = _ERRORS[code]
        return self._error(status, error, f"{code}: {template.format(**fmt)}", [int(code[6:])])

    def _error(
        self, status: int, error: str, description: str, codes: list[int], headers: dict[str, str] | None = None
    ) -> Response:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = {
            "error": error,
            "error_description": f"{description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {now}",
            "error_codes": codes,
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self.base_url}/error?code={codes[0] if codes else 0}",
        }
        return json_response(status, body, headers)

    def error_response(
        self, req: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        return self._error(status, code, message, [], headers)

    def default_code(self, status: int) -> str:
        if status == 429 or status >= 500:
            return "temporarily_unavailable"
        return {400: "invalid_request", 401: "invalid_client"}.get(status, "server_error")

    def fault_response(self, req: Request, route_id: str, fault: Fault) -> Response:
        status = fault.status or 500
        headers = {"Retry-After": retry_after_value(fault.retry_after)} if fault.retry_after is not None else {}
        code = fault.error_code or self.default_code(status)
        return self._error(status, code, f"AADSTS50196: Injected fault on {route_id}.", [50196], headers)

    def unknown_route(self, req: Request) -> Response:
        return self._error(404, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.", [900561])

    # -- routes
    def openid_configuration(self, req: Request, tenant: str) -> Response:
        if not self.world.entra.known_tenant(tenant) and tenant.lower() not in {"common", "organizations"}:
            return self._aadsts("AADSTS90002", tenant=tenant)
        base = f"{self.base_url}/{tenant}"
        return json_response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.base_url}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.base_url}/{self.world.entra.tenant_id}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.base_url}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "NA",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            },
        )

    def token(self, req: Request, tenant: str) -> Response:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not self.world.entra.known_tenant(tenant):
            return self._aadsts("AADSTS90002", tenant=tenant)
        grant = form.get("grant_type", "")
        if not grant:
            return self._aadsts("AADSTS900144", param="grant_type")
        if grant != "client_credentials":
            return self._aadsts("AADSTS70003", grant=grant)
        client_id = form.get("client_id", "")
        if not client_id:
            return self._aadsts("AADSTS900144", param="client_id")
        scope = form.get("scope", "")
        if not scope:
            return self._aadsts("AADSTS900144", param="scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return self._aadsts("AADSTS1002012", scope=scope)
        resource = _RESOURCES.get(scopes[0][: -len("/.default")])
        if resource is None:
            return self._aadsts("AADSTS500011", resource=scopes[0][: -len("/.default")], tenant=tenant)
        secret = form.get("client_secret", "")
        if not secret and self.world.graph.by_app_id(client_id) is not None:
            return self._error(
                401,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following "
                "parameter: 'client_assertion' or 'client_secret'.",
                [7000218],
            )
        ok, code = self.world.entra.token_works(tenant, client_id, secret)
        if not ok:
            return self._aadsts(code, tenant=tenant, client_id=client_id)
        token = self.world.entra.issue_token(client_id, resource)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": TOKEN_LIFETIME_SECONDS,
                "access_token": token,
            },
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )
