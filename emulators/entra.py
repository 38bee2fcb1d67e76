"""Microsoft Entra ID (v2.0 endpoints): the token service and the user sign-in page.

Decisions come from the shared World: a client secret is accepted only if it
is a live, propagated password credential of the Graph app whose appId is the
client id, exactly like Entra validates against the directory. Users sign in at
``/authorize`` (the emulator signs in whoever ``login_hint`` names) and the app
redeems the code or a refresh token at ``/token``.

Tokens for Graph and Key Vault are opaque (the emulators look them up). Tokens for the service's own
API (``scope=<its Application ID URI or client id>/.default``) are real RS256 JWTs shaped like
Entra's v2.0 access tokens, signed with the key published at ``/{tenant}/discovery/v2.0/keys``
(world.caller_api): the service validates them as it would Entra's.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from ._http import Request, Response, Service, json_response, retry_after_value
from .world import (
    GRAPH_RESOURCE,
    GRAPH_RESOURCE_ID,
    PERSONAL_AUDIENCES,
    TOKEN_LIFETIME_SECONDS,
    VAULT_RESOURCE,
    EntraUser,
    Fault,
    GraphApp,
    TokenOutcome,
    World,
)

EXCHANGE_RESOURCE_ID = "00000002-0000-0ff1-ce00-000000000000"
_GRAPH_PREFIXES = {GRAPH_RESOURCE, GRAPH_RESOURCE_ID}
_EXCHANGE_PREFIXES = {"https://outlook.office365.com", "https://outlook.office.com", EXCHANGE_RESOURCE_ID}
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
# Delegated permissions of Microsoft Graph the emulator knows [G1] (names are case-insensitive).
GRAPH_DELEGATED_SCOPES = (
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite",
    "Mail.Read",
    "Mail.ReadBasic",
    "Mail.ReadWrite",
    "Mail.Send",
    "Mail.Read.Shared",
    "Mail.ReadWrite.Shared",
    "Mail.Send.Shared",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "Calendars.Read",
    "Calendars.ReadBasic",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
    "Contacts.Read",
    "Contacts.ReadWrite",
    "Contacts.Read.Shared",
    "Contacts.ReadWrite.Shared",
    "People.Read",
    "People.Read.All",
    "OnlineMeetings.Read",
    "OnlineMeetings.ReadWrite",
    "Place.Read.All",
    "Tasks.Read",
    "Tasks.ReadWrite",
    "Files.Read",
    "Files.ReadWrite",
    "Files.Read.All",
    "Files.ReadWrite.All",
    "IMAP.AccessAsUser.All",
    "POP.AccessAsUser.All",
    "SMTP.Send",
    "EAS.AccessAsUser.All",
    "EWS.AccessAsUser.All",
)
# Delegated permissions of Exchange Online (the legacy protocols Nylas v2 used).
EXCHANGE_DELEGATED_SCOPES = (
    "EAS.AccessAsUser.All",
    "EWS.AccessAsUser.All",
    "IMAP.AccessAsUser.All",
    "POP.AccessAsUser.All",
    "SMTP.Send",
    "full_access_as_user",
)
# Exchange ActiveSync / EWS: work accounts only (personal accounts get invalid_scope).
_EXCHANGE_ONLY_WORK = {"eas.accessasuser.all", "ews.accessasuser.all"}
_GRAPH_BY_LOWER = {s.lower(): s for s in GRAPH_DELEGATED_SCOPES}
_EXCHANGE_BY_LOWER = {s.lower(): s for s in EXCHANGE_DELEGATED_SCOPES}

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
    # [T4]; the status is UNCONFIRMED: 401 like Entra's other invalid_client refusals (guessed).
    "AADSTS7000229": (
        "invalid_client",
        401,
        "The client application {client_id} is missing service principal in the tenant {tenant}. See "
        "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
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
    "AADSTS7000218": (
        "invalid_client",
        401,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    # User grants (authorization_code, refresh_token).
    "AADSTS9002313": ("invalid_grant", 400, "Invalid request. Request is malformed or invalid."),
    "AADSTS54005": (
        "invalid_grant",
        400,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
        "existing refresh token.",
    ),
    "AADSTS70008": (
        "invalid_grant",
        400,
        "The provided authorization code or refresh token has expired due to inactivity. Send a new "
        "interactive authorization request for this user and resource.",
    ),
    "AADSTS70000": ("invalid_grant", 400, "Provided grant is invalid or malformed."),
    # Caller sign-in: the API's service principal requires an assignment and the client has none.
    "AADSTS501051": (
        "invalid_grant",
        400,
        "Application '{client_id}'({app_name}) is not assigned to a role for the application "
        "'{resource}'({resource_name}).",
    ),
}

# Sign-in page (GET /authorize) refusals: AADSTS code -> description template.
_SIGN_IN: dict[str, str] = {
    "AADSTS90002": _ERRORS["AADSTS90002"][2],
    "AADSTS700016": _ERRORS["AADSTS700016"][2],
    "AADSTS900144": _ERRORS["AADSTS900144"][2],
    "AADSTS50011": (
        "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured "
        "for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to "
        "your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more "
        "about how to fix this."
    ),
    "AADSTS50020": (
        "User account '{email}' from identity provider '{idp}' does not exist in tenant '{tenant}' and cannot "
        "access the application '{client_id}'({app_name}) in that tenant. The account needs to be added as an "
        "external user in the tenant first. Sign out and sign in again with a different Azure Active Directory "
        "user account."
    ),
    "AADSTS500200": (
        "User account '{email}' is a personal Microsoft account. Personal Microsoft accounts are not supported "
        "for this application unless explicitly invited to an organization. Try signing out and signing back in "
        "with an organizational account."
    ),
    "AADSTS9002331": (
        "Application '{client_id}'({app_name}) is configured for use by Microsoft Account users only. Please use "
        "the /consumers endpoint to serve this request."
    ),
}
# Refusals sent back to the redirect URI: AADSTS code -> (OAuth error, description template).
_REDIRECTED: dict[str, tuple[str, str]] = {
    "AADSTS50194": (
        "invalid_request",
        "Application '{client_id}'({app_name}) is not configured as a multi-tenant application. Usage of the "
        "/common endpoint is not supported for such applications created after '10/15/2018'. Use a "
        "tenant-specific endpoint or configure the application to be multi-tenant.",
    ),
    "AADSTS900144": ("invalid_request", _ERRORS["AADSTS900144"][2]),
    "AADSTS700051": (
        "unsupported_response_type",
        "response_type '{response_type}' is not enabled for the application.",
    ),
    "AADSTS70011": (
        "invalid_scope",
        "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not exist.",
    ),
    "AADSTS70011.default": (
        "invalid_scope",
        "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' is not valid - it "
        "refers to a resource which is not listed in the client's Required Resource Access and for which the user "
        "does not have any existing consent.",
    ),
    "AADSTS70011.resource": (
        "invalid_scope",
        "The provided resource value for the input parameter 'scope' is not valid.",
    ),
}
_CONSUMERS_REFUSAL = (
    "The client does not exist or is not enabled for consumers. If you are the application developer, configure a "
    "new application through the App Registrations in the Azure Portal."
)


@dataclass
class _Refusal(Exception):
    """A sign-in the user agent cannot continue: an error page, or an error sent to the redirect URI."""

    code: str  # AADSTS code (or an OAuth error when the page has none)
    params: dict[str, str]
    redirect: bool = False


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
        self.add("GET", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/authorize", "entra.authorize", self.authorize)
        # Caller sign-in: the keys the service's API tokens are signed with.
        self.add("GET", r"/(?P<tenant>[^/]+)/discovery/v2\.0/keys", "entra.jwks", self.jwks)

    # -- caller sign-in: the issuer's authority is this emulator's own URL, known once it listens
    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = value
        if value:
            self.world.caller_api.authority = value

    def jwks(self, req: Request, tenant: str) -> Response:
        if not self.world.entra.known_tenant(tenant) and tenant.lower() not in {"common", "organizations"}:
            return self._aadsts("AADSTS90002", tenant=tenant)
        return json_response(200, self.world.caller_api.jwks())

    def _caller_api_token(self, client_id: str) -> Response:
        """client_credentials for the service's API: a signed v2.0 app token with the client's roles."""
        api = self.world.caller_api
        refused = api.refusal(client_id)
        if refused is not None:
            app = self.world.graph.by_app_id(client_id)
            return self._aadsts(
                refused,
                client_id=client_id,
                app_name=app.display_name if app else "",
                resource=api.identifier_uri,
                resource_name=api.display_name,
            )
        token = api.app_token(client_id)
        body = {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "ext_expires_in": TOKEN_LIFETIME_SECONDS,
            "access_token": token,
        }
        return json_response(200, body, _NO_CACHE)

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
        grant = form.get("grant_type", "")
        if grant in ("authorization_code", "refresh_token"):
            # User grants may use the multi-tenant authorities (common, organizations, consumers).
            if self.world.entra.resolve_authority(tenant) is None:
                return self._aadsts("AADSTS90002", tenant=tenant)
            return self._user_grant(req, form, tenant, grant)
        if not self.world.entra.known_tenant(tenant):
            return self._aadsts("AADSTS90002", tenant=tenant)
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
        caller_api = resource is None and self.world.caller_api.matches(scopes[0][: -len("/.default")])
        if resource is None and not caller_api:
            return self._aadsts("AADSTS500011", resource=scopes[0][: -len("/.default")], tenant=tenant)
        secret = form.get("client_secret", "")
        if not secret and self.world.graph.by_app_id(client_id) is not None:
            return self._aadsts("AADSTS7000218")
        ok, code = self.world.entra.token_works(tenant, client_id, secret)
        if code == "AADSTS7000229":  # names the directory by its id
            return self._aadsts(code, tenant=self.world.entra.tenant_id, client_id=client_id)
        if not ok:
            return self._aadsts(code, tenant=tenant, client_id=client_id)
        if caller_api or resource is None:
            return self._caller_api_token(client_id)
        token = self.world.entra.issue_token(client_id, resource)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": TOKEN_LIFETIME_SECONDS,
                "access_token": token,
            },
            _NO_CACHE,
        )

    def _user_grant(self, req: Request, form: dict[str, str], tenant: str, grant: str) -> Response:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = _basic_credentials(req.header("Authorization"))
        if basic is not None:  # client_secret_basic
            client_id, secret = client_id or basic[0], basic[1]
        if not client_id:
            return self._aadsts("AADSTS900144", param="client_id")
        entra = self.world.entra
        if grant == "authorization_code":
            for param in ("code", "redirect_uri"):
                if not form.get(param):
                    return self._aadsts("AADSTS900144", param=param)
            outcome = entra.redeem_code(
                tenant=tenant,
                code=form["code"],
                client_id=client_id,
                client_secret=secret,
                redirect_uri=form["redirect_uri"],
            )
        else:
            if not form.get("refresh_token"):
                return self._aadsts("AADSTS900144", param="refresh_token")
            outcome = entra.redeem_refresh(
                tenant=tenant, refresh_token=form["refresh_token"], client_id=client_id, client_secret=secret
            )
        if outcome.ok:
            return json_response(200, outcome.body, _NO_CACHE)
        return self._outcome_error(outcome)

    def _outcome_error(self, outcome: TokenOutcome) -> Response:
        if outcome.code == "AADSTS50011":  # redirect_uri differs from the one the code was issued for
            p = outcome.params
            return self._error(
                400,
                "invalid_grant",
                "AADSTS70002: Error validating credentials. AADSTS50011: The reply address "
                f"'{p['redirect_uri']}' does not match the reply address '{p['expected']}' provided when "
                "requesting Authorization code.",
                [70002, 50011],
            )
        return self._aadsts(outcome.code, **outcome.params)

    # -- sign-in page
    def authorize(self, req: Request, tenant: str) -> Response:
        """GET /{tenant}/oauth2/v2.0/authorize: signs in the user ``login_hint`` names (no password
        page) and sends them back with a code, or refuses on a page or at the redirect URI."""
        q = {k: v[0] for k, v in req.query.items()}
        try:
            return self._sign_in(tenant, q)
        except _Refusal as refusal:
            if refusal.redirect:
                error, template = _REDIRECTED[refusal.code]
                code = refusal.code.split(".")[0]
                params = {"error": error, "error_description": f"{code}: {template.format(**refusal.params)}"}
                if q.get("state") is not None:
                    params["state"] = q["state"]
                return _redirect(q["redirect_uri"], params)
            return self._sign_in_page(refusal)

    def _sign_in(self, tenant: str, q: dict[str, str]) -> Response:
        entra = self.world.entra
        authority = entra.resolve_authority(tenant)
        if authority is None:
            raise _Refusal("AADSTS90002", {"tenant": tenant})
        client_id = q.get("client_id", "")
        if not client_id:
            raise _Refusal("AADSTS900144", {"param": "client_id"})
        app = self.world.graph.by_app_id(client_id)
        audience = str(app.data.get("signInAudience") or "AzureADMyOrg") if app else ""
        # An app lives in its home directory: another organisation's authority only finds multi-tenant apps.
        foreign_directory = authority not in ("common", "organizations", "consumers", entra.tenant_id)
        if app is None or (foreign_directory and audience == "AzureADMyOrg"):
            raise _Refusal("AADSTS700016", {"client_id": client_id, "tenant": tenant})
        names = {"client_id": app.app_id, "app_name": app.display_name}
        if authority == "consumers" and audience not in PERSONAL_AUDIENCES:
            raise _Refusal("unauthorized_client", names)
        if audience == "PersonalMicrosoftAccount" and authority != "consumers":
            raise _Refusal("AADSTS9002331", names)
        redirect_uri = q.get("redirect_uri", "")
        if not redirect_uri:
            raise _Refusal("AADSTS900144", {"param": "redirect_uri"})
        if redirect_uri not in _redirect_uris(app):
            raise _Refusal("AADSTS50011", {"redirect_uri": redirect_uri, "client_id": app.app_id})
        # From here on the redirect URI is trusted: protocol errors go back to it.
        if authority in ("common", "organizations") and audience == "AzureADMyOrg":
            raise _Refusal("AADSTS50194", names, redirect=True)
        response_type = q.get("response_type", "")
        if not response_type:
            raise _Refusal("AADSTS900144", {"param": "response_type"}, redirect=True)
        if response_type != "code":
            raise _Refusal("AADSTS700051", {"response_type": response_type}, redirect=True)
        scope = q.get("scope", "")
        if not scope.strip():
            raise _Refusal("AADSTS900144", {"param": "scope"}, redirect=True)
        scopes = _scopes(scope, app)
        login_hint = q.get("login_hint", "")
        if not login_hint:
            return _login_page(app)
        user = entra.user_for_hint(login_hint)
        self._check_account(authority, audience, user, app, tenant)
        if user.kind == "personal":
            if any(s.rsplit("/", 1)[-1].lower() in _EXCHANGE_ONLY_WORK for s in scopes):
                raise _Refusal("AADSTS70011.resource", {}, redirect=True)
            if any(s.endswith("/.default") for s in scopes):
                raise _Refusal("AADSTS70011", {"scope": scope}, redirect=True)
        code = entra.issue_code(app.app_id, redirect_uri, user, scopes)
        params = {"code": code}
        if q.get("state") is not None:
            params["state"] = q["state"]
        params["session_state"] = str(uuid.uuid4())
        return _redirect(redirect_uri, params)

    def _check_account(self, authority: str, audience: str, user: EntraUser, app: GraphApp, tenant: str) -> None:
        """Whether this account may sign in to this app at this authority (the app's audience [E1])."""
        specific = authority not in ("common", "organizations", "consumers")
        idp = "live.com" if user.kind == "personal" else f"https://sts.windows.net/{user.home_tenant}/"
        guest = {
            "email": user.email,
            "idp": idp,
            "tenant": tenant,
            "client_id": app.app_id,
            "app_name": app.display_name,
        }
        if user.kind == "personal":
            if specific:
                raise _Refusal("AADSTS50020", guest)
            if authority == "organizations" or audience not in PERSONAL_AUDIENCES:
                raise _Refusal("AADSTS500200", {"email": user.email})
            return
        if authority == "consumers" or audience == "PersonalMicrosoftAccount":
            raise _Refusal("AADSTS50020", guest)
        # (An AzureADMyOrg app is only reachable at its home authority: other users are guests here.)
        if specific and user.home_tenant.lower() != authority.lower():
            raise _Refusal("AADSTS50020", guest)

    def _sign_in_page(self, refusal: _Refusal) -> Response:
        """Entra's error page: the user sees it, the app never hears back (status guessed: 400)."""
        if refusal.code == "unauthorized_client":
            message, number = f"unauthorized_client: {_CONSUMERS_REFUSAL}", 0
        else:
            message = f"{refusal.code}: {_SIGN_IN[refusal.code].format(**refusal.params)}"
            number = int(refusal.code[6:])
        correlation, request_id = str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = {
            "iErrorCode": number,
            "strServiceExceptionMessage": message,
            "correlationId": correlation,
            "sessionId": request_id,
            "timestamp": now,
        }
        page = (
            "<!DOCTYPE html><html><head><title>Sign in to your account</title>"
            f"<script>$Config={json.dumps(config)};</script></head><body>"
            '<div id="error"><h1>Sign in</h1><p>Sorry, but we\u2019re having trouble signing you in.</p>'
            f"<p>Request Id: {request_id}<br>Correlation Id: {correlation}<br>Timestamp: {now}<br>"
            f"Message: {html.escape(message)}</p></div></body></html>"
        )
        return Response(400, page.encode(), {"Content-Type": "text/html; charset=utf-8", **_NO_CACHE})


_NO_CACHE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _basic_credentials(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(user), unquote_plus(password)


def _redirect_uris(app: GraphApp) -> list[str]:
    uris: list[str] = []
    for platform in ("web", "spa", "publicClient"):
        section = app.data.get(platform)
        if isinstance(section, dict):
            uris += [u for u in section.get("redirectUris") or [] if isinstance(u, str)]
    return uris


def _redirect(uri: str, params: dict[str, str]) -> Response:
    joiner = "&" if urlsplit(uri).query else "?"
    return Response(302, b"", {"Location": f"{uri}{joiner}{urlencode(params)}", **_NO_CACHE})


def _login_page(app: GraphApp) -> Response:
    """No login_hint: the emulator has no password page, so the user agent stops here (200)."""
    body = (
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
        f"<h1>Sign in</h1><p>to continue to {html.escape(app.display_name)}</p>"
        "<p>The emulator signs in the user named by login_hint; none was given.</p></body></html>"
    )
    return Response(200, body.encode(), {"Content-Type": "text/html; charset=utf-8", **_NO_CACHE})


def _scopes(raw: str, app: GraphApp) -> list[str]:
    """Validated, normalised scopes: Graph scopes as https://graph.microsoft.com/<Name> (a bare name
    means Graph), OpenID scopes as they are. Unknown ones are AADSTS70011 [T1]. A named delegated
    permission the app does not declare is allowed (dynamic consent [EM3]); '<resource>/.default'
    only for a resource the app declares in requiredResourceAccess [EM4]."""
    declared = {str(r.get("resourceAppId", "")).lower() for r in app.data.get("requiredResourceAccess") or []}
    out: list[str] = []
    for scope in raw.split():
        if scope.lower() in OIDC_SCOPES:
            normalised = scope.lower()
        else:
            prefix, _, name = scope.rpartition("/")
            prefix = prefix.rstrip("/").lower()
            if not prefix or prefix in _GRAPH_PREFIXES:
                resource, catalogue, base = GRAPH_RESOURCE_ID, _GRAPH_BY_LOWER, GRAPH_RESOURCE
            elif prefix in _EXCHANGE_PREFIXES:
                resource, catalogue, base = EXCHANGE_RESOURCE_ID, _EXCHANGE_BY_LOWER, "https://outlook.office365.com"
            else:
                raise _Refusal("AADSTS70011", {"scope": raw}, redirect=True)
            if name == ".default":
                if resource not in declared:
                    raise _Refusal("AADSTS70011.default", {"scope": raw}, redirect=True)
                normalised = f"{base}/.default"
            elif name.lower() in catalogue:
                normalised = f"{base}/{catalogue[name.lower()]}"
            else:
                raise _Refusal("AADSTS70011", {"scope": raw}, redirect=True)
        if normalised not in out:
            out.append(normalised)
    return out
