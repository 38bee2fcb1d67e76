"""Microsoft Graph v1.0: applications, their owners and password credentials, service principals.

Permission model is Application.ReadWrite.OwnedBy [G3][G4]: a caller reads every
application and service principal of the directory, but changes (PATCH, DELETE,
addPassword, removePassword, POST /servicePrincipals [G5]) only the applications it
owns (those it created [G6], or was made owner of); adding owners is refused. New
objects are invisible to keyed reads for ``world.graph.replication_delay`` seconds,
like Entra's directory replication [G12].

Going to production (issue 14): ``info`` (informationalUrl) on GET/PATCH [IU][TOS], ``publisherDomain`` (read
only; the portal sets it [PD]) and ``verifiedPublisher`` on GET, ``PUT/GET .../logo`` (the portal's rules [BR];
Graph publishes none), and ``setVerifiedPublisher``/``unsetVerifiedPublisher``: delegated
Application.ReadWrite.All only, for a user holding Application Administrator, Cloud Application Administrator
or Global Administrator, with the errors of [PV1] ([SVP] for the permission; the refusal of an application
token is UNCONFIRMED: see ``_app_only_refused``).

Sources beside docs/emulators.md's: [SVP] learn.microsoft.com/graph/api/application-setverifiedpublisher;
[PV1] learn.microsoft.com/entra/identity-platform/troubleshoot-publisher-verification; [PV2] .../publisher-
verification-overview; [PD] .../howto-configure-publisher-domain; [IU] learn.microsoft.com/graph/api/resources/
informationalurl; [TOS] .../howto-add-terms-of-service-privacy-statement; [BR] the app registration portal's
logo rules (.png/.jpg/.bmp under 100 KB, 215x215 px), as learn.microsoft.com's app registration field
reference (2017) states them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from ._http import HttpError, Request, Response, Service, empty, json_response
from .world import (
    GRAPH_RESOURCE,
    LOGO_CONTENT_TYPES,
    MAX_LOGO_BYTES,
    PERSONAL_AUDIENCES,
    PUBLISHER_ROLES,
    DelegatedGrant,
    GraphApp,
    ServicePrincipal,
    StoredLogo,
    World,
    add_years,
    default_app_data,
    iso,
    stable_guid,
)

PAGE_SIZE = 100
ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

# Writable application properties (names as msgraph-sdk serialises them).
_APP_PROPERTIES = {
    "addIns",
    "api",
    "appRoles",
    "defaultRedirectUri",
    "description",
    "displayName",
    "groupMembershipClaims",
    "identifierUris",
    "info",
    "isDeviceOnlyAuthSupported",
    "isFallbackPublicClient",
    "notes",
    "oauth2RequirePostResponse",
    "optionalClaims",
    "parentalControlSettings",
    "publicClient",
    "requiredResourceAccess",
    "samlMetadataUrl",
    "serviceManagementReference",
    "signInAudience",
    "spa",
    "tags",
    "tokenEncryptionKeyId",
    "uniqueName",
    "web",
    "keyCredentials",
    "authenticationBehaviors",
    "servicePrincipalLockConfiguration",
    "nativeAuthenticationApisEnabled",
}
_READ_ONLY = {"id", "appId", "createdDateTime", "publisherDomain", "deletedDateTime", "passwordCredentials"}
_SIGN_IN_AUDIENCES = {
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
}
_KEY = r"\(\s*(?P<key>appId|uniqueName)\s*=\s*'(?P<value>(?:[^']|'')*)'\s*\)"


def _not_found(ident: str) -> HttpError:
    return HttpError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ident}' does not exist or one of its queried reference-property objects are not present.",
    )


def _denied() -> HttpError:
    return HttpError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


# POST /servicePrincipals under Application.ReadWrite.OwnedBy for an app the caller does not own (or
# whose ownership has not replicated yet) [G12]; Graph's own wording, grammar included.
_SP_BACKING_APP = (
    "When using this permission, the backing application of the service principal being created must in the "
    "local tenant"
)


def _sp_no_app(app_id: str) -> HttpError:
    """POST /servicePrincipals for an appId Graph cannot resolve (yet) [G12]."""
    return _bad(f"The appId '{app_id}' of the service principal does not reference a valid application object.")


def _bad(message: str, code: str = "Request_BadRequest") -> HttpError:
    return HttpError(400, code, message)


def _invalid(prop: str) -> HttpError:
    return _bad(f"Invalid value specified for property '{prop}' of resource 'Application'.")


def _personal(data: dict[str, Any]) -> bool:
    return data.get("signInAudience") in PERSONAL_AUDIENCES


def _merged(base: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The app's properties after applying ``data`` the way _apply does (web merged one level)."""
    out = dict(base)
    for key, value in data.items():
        if key == "web" and isinstance(out.get("web"), dict) and isinstance(value, dict):
            out["web"] = {**out["web"], **value}
        else:
            out[key] = value
    return out


def _check_personal(app: dict[str, Any], passwords: int) -> None:
    """Rules for apps personal accounts may sign in to [E1][E2][G2]; the error bodies are guessed."""
    api = app.get("api")
    if not isinstance(api, dict) or api.get("requestedAccessTokenVersion") != 2:
        raise _bad("Property api.requestedAccessTokenVersion is invalid.")
    if len(str(app.get("displayName") or "")) > 90:
        raise _invalid("displayName")
    access = app.get("requiredResourceAccess") or []
    per_resource = [len(r.get("resourceAccess") or []) if isinstance(r, dict) else 0 for r in access]
    if len(access) > 50 or sum(per_resource) > 200 or any(n > 30 for n in per_resource):
        raise _invalid("requiredResourceAccess")
    total = 0
    for platform in ("web", "spa", "publicClient"):
        section = app.get(platform)
        uris = section.get("redirectUris") or [] if isinstance(section, dict) else []
        total += len(uris)
        if any(isinstance(u, str) and urlsplit(u).query for u in uris):
            raise _invalid(platform)
    if total > 100:
        raise _invalid("web")
    if passwords > 2:
        raise _invalid("passwordCredentials")


def _parse_dt(value: Any, prop: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"Invalid value specified for property '{prop}' of resource 'PasswordCredential'.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(
            f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'.", "BadRequest"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class GraphService(Service):
    name = "graph"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        v = r"/v1\.0"
        self.add("POST", v + r"/applications", "graph.create_application", self.create_application)
        self.add("GET", v + r"/applications", "graph.list_applications", self.list_applications)
        self.add("GET", v + r"/applications" + _KEY, "graph.get_application", self.get_by_key)
        self.add("PATCH", v + r"/applications" + _KEY, "graph.upsert_application", self.patch_by_key)
        self.add("DELETE", v + r"/applications" + _KEY, "graph.delete_application", self.delete_by_key)
        self.add("GET", v + r"/applications" + _KEY + r"/owners", "graph.list_owners", self.list_owners_by_key)
        self.add("GET", v + r"/applications/(?P<oid>[^/()]+)/owners", "graph.list_owners", self.list_owners)
        self.add("POST", v + r"/applications/(?P<oid>[^/()]+)/owners/\$ref", "graph.add_owner", self.add_owner)
        self.add("GET", v + r"/applications/(?P<oid>[^/()]+)", "graph.get_application", self.get_application)
        self.add("PATCH", v + r"/applications/(?P<oid>[^/()]+)", "graph.update_application", self.update_application)
        self.add("DELETE", v + r"/applications/(?P<oid>[^/()]+)", "graph.delete_application", self.delete_application)
        self.add(
            "POST",
            v + r"/applications/(?P<oid>[^/()]+)/(?:microsoft\.graph\.)?addPassword",
            "graph.add_password",
            self.add_password,
        )
        self.add(
            "POST",
            v + r"/applications/(?P<oid>[^/()]+)/(?:microsoft\.graph\.)?removePassword",
            "graph.remove_password",
            self.remove_password,
        )
        self.add("POST", v + r"/servicePrincipals", "graph.create_service_principal", self.create_service_principal)
        self.add(
            "GET",
            v + r"/servicePrincipals\(\s*appId\s*=\s*'(?P<app_id>[^']*)'\s*\)",
            "graph.get_service_principal",
            self.get_sp_by_app_id,
        )
        self.add("GET", v + r"/servicePrincipals/(?P<oid>[^/()]+)", "graph.get_service_principal", self.get_sp)
        # Going to production (issue 14): the logo and the verified publisher.
        self.add("PUT", v + r"/applications/(?P<oid>[^/()]+)/logo", "graph.put_logo", self.put_logo)
        self.add("GET", v + r"/applications/(?P<oid>[^/()]+)/logo", "graph.get_logo", self.get_logo)
        for action, handler in (
            ("setVerifiedPublisher", self.set_verified_publisher),
            ("unsetVerifiedPublisher", self.unset_verified_publisher),
        ):
            route = "graph." + ("set" if action.startswith("set") else "unset") + "_verified_publisher"
            self.add("POST", v + r"/applications/(?P<oid>[^/()]+)/(?:microsoft\.graph\.)?" + action, route, handler)
            self.add("POST", v + r"/applications" + _KEY + r"/(?:microsoft\.graph\.)?" + action, route, handler)

    # -- wire format
    def error_response(
        self, req: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        request_id = req.context.setdefault("request_id", str(uuid.uuid4()))
        error: dict[str, Any] = {"code": code, "message": message}
        if req.context.get("error_details") is not None:
            error["details"] = req.context["error_details"]
        body = {
            "error": {
                **error,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": req.header("client-request-id") or request_id,
                },
            }
        }
        out = dict(headers or {})
        if status == 401:
            out.setdefault(
                "WWW-Authenticate",
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com'
                '/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
            )
        return json_response(status, body, out, ODATA_JSON)

    def default_code(self, status: int) -> str:
        return {
            400: "BadRequest",
            401: "InvalidAuthenticationToken",
            403: "Authorization_RequestDenied",
            404: "Request_ResourceNotFound",
            409: "Request_MultipleObjectsWithSameKeyValue",
            429: "TooManyRequests",
            500: "UnknownError",
            503: "ServiceUnavailable",
            504: "GatewayTimeout",
        }.get(status, super().default_code(status))

    def decorate(self, req: Request, resp: Response) -> None:
        request_id = req.context.setdefault("request_id", str(uuid.uuid4()))
        resp.headers.setdefault("request-id", request_id)
        resp.headers.setdefault("client-request-id", req.header("client-request-id") or request_id)
        resp.headers.setdefault("x-ms-ags-diagnostic", json.dumps({"ServerInfo": {"DataCenter": "Emulator"}}))

    def unknown_route(self, req: Request) -> Response:
        segment = req.path.rstrip("/").rsplit("/", 1)[-1]
        return self.error_response(req, 400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    def _context(self, req: Request, fragment: str) -> str:
        return f"{self.base_url}/v1.0/$metadata#{fragment}"

    def _app_json(self, req: Request, app: GraphApp, *, entity: bool = True) -> dict[str, Any]:
        body = app.to_json()
        # Graph answers both complex properties even when unset, with null members [IU][PV1].
        body["info"] = {**_EMPTY_INFO, **(body.get("info") or {})}
        body["verifiedPublisher"] = {**_EMPTY_PUBLISHER, **(body.get("verifiedPublisher") or {})}
        select = req.q("$select")
        if select:
            wanted = {s.strip() for s in select.split(",")} | {"id"}
            body = {k: v for k, v in body.items() if k in wanted}
        if entity:
            body = {"@odata.context": self._context(req, "applications/$entity"), **body}
        return body

    # -- caller and lookups
    def _caller(self, req: Request) -> str:
        auth = req.header("Authorization")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise HttpError(401, "InvalidAuthenticationToken", "Access token is empty.")
        issued = self.world.entra.check_token(auth[7:].strip())
        if issued is None:
            raise HttpError(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed, there are no dots "
                "(.). The token needs to be in JWS or JWE Compact Serialization Format.",
            )
        if issued.resource != GRAPH_RESOURCE:
            raise HttpError(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
        return issued.client_id

    def _visible(self, app: GraphApp | None, ident: str) -> GraphApp:
        if app is None or not self.world.graph.replicated(app.created):
            raise _not_found(ident)
        return app

    def _owned(self, caller: str, app: GraphApp) -> GraphApp:
        if caller not in app.owners:
            raise _denied()
        return app

    def _by_key(self, key: str, value: str) -> GraphApp | None:
        value = value.replace("''", "'")
        graph = self.world.graph
        return graph.by_app_id(value) if key == "appId" else graph.by_unique_name(value)

    def _app(self, req: Request, oid: str) -> GraphApp:
        """An app the caller may change: visible (replicated) and owned by the caller."""
        caller = self._caller(req)
        return self._owned(caller, self._visible(self.world.graph.apps.get(oid), oid))

    def _readable(self, req: Request, oid: str) -> GraphApp:
        """An app the caller may read: any replicated app of the directory [G3]."""
        self._caller(req)
        return self._visible(self.world.graph.apps.get(oid), oid)

    # -- write quota of personal-account apps [G11]
    def _quota(self, caller: str, *states: dict[str, Any]) -> None:
        """Count a write (POST/PATCH/DELETE, add/removePassword) to an app personal accounts may sign in
        to, before or after the change; refuse it with 429 once the caller used up its quota."""
        if not any(_personal(state) for state in states):
            return
        tenant = self.world.entra.tenant_id
        wait = self.world.graph.take_personal_write(caller, tenant)
        if wait is None:
            return
        raise HttpError(
            429,
            "TooManyRequests",
            "Please retry again later.",
            {
                "Retry-After": str(max(1, math.ceil(wait))),
                "x-ms-throttle-scope": f"Tenant_Application/Write/{caller}/{tenant}",
                "x-ms-throttle-information": "WriteLimitExceeded",
            },
        )

    # -- validation
    def _validate(self, body: Any, *, creating: bool, app: GraphApp | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad("Empty Payload. JSON content expected.", "BadRequest")
        data = {k: v for k, v in body.items() if not k.startswith("@odata.")}
        for key in data:
            if key in _READ_ONLY:
                raise _bad(f"Property '{key}' is read-only and cannot be set.")
            if key not in _APP_PROPERTIES:
                raise _bad(
                    f"Property '{key}' does not exist on type 'microsoft.graph.application'. Make sure to only "
                    "use property names that are defined by the type.",
                    "BadRequest",
                )
        if creating or "displayName" in data:
            name = data.get("displayName")
            if creating and not name:
                raise _bad("Required property 'displayName' is missing or empty.")
            if not isinstance(name, str) or len(name) > 120:
                raise _bad("Invalid value specified for property 'displayName' of resource 'Application'.")
        if "signInAudience" in data and data["signInAudience"] not in _SIGN_IN_AUDIENCES:
            raise _bad("Invalid value specified for property 'signInAudience' of resource 'Application'.")
        if "tags" in data:
            tags = data["tags"]
            if not isinstance(tags, list) or any(not isinstance(t, str) or not t or re.search(r"\s", t) for t in tags):
                raise _bad("Invalid value specified for property 'tags' of resource 'Application'.")
            if len({t.lower() for t in tags}) != len(tags):
                raise _bad(
                    "Request contains a property with duplicate values.", "Request_MultipleObjectsWithSameKeyValue"
                )
            if any(len(t) > 256 for t in tags):
                raise _bad("Invalid value specified for property 'tags' of resource 'Application'.")
        if "web" in data:
            web = data["web"]
            uris = web.get("redirectUris", []) if isinstance(web, dict) else None
            if not isinstance(uris, list) or any(not isinstance(u, str) for u in uris):
                raise _bad("Invalid value specified for property 'web' of resource 'Application'.")
        if "info" in data:
            data["info"] = _info(data["info"])
        if "requiredResourceAccess" in data and not isinstance(data["requiredResourceAccess"], list):
            raise _bad("Invalid value specified for property 'requiredResourceAccess' of resource 'Application'.")
        if "uniqueName" in data:
            unique = data["uniqueName"]
            if app is not None and app.unique_name and unique != app.unique_name:
                raise _bad("Property 'uniqueName' is read-only once set and cannot be changed.")
            if not isinstance(unique, str) or not unique or len(unique) > 120:
                raise _bad("Invalid value specified for property 'uniqueName' of resource 'Application'.")
            other = self.world.graph.by_unique_name(unique)
            if other is not None and other is not app:
                raise HttpError(
                    400,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "Another object with the same value for property uniqueName already exists.",
                )
        return data

    def _apply(self, app: GraphApp, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key == "web" and isinstance(app.data.get("web"), dict):
                app.data["web"] = {**app.data["web"], **value}
            elif key == "info":
                # Replaced whole [TOS]; logoUrl is read-only: it follows the uploaded logo, whatever is sent.
                logo = (app.data.get("info") or {}).get("logoUrl")
                app.data["info"] = {**value, "logoUrl": logo}
            else:
                app.data[key] = value

    # -- applications
    def create_application(self, req: Request) -> Response:
        caller = self._caller(req)
        body = req.json()
        self._quota(caller, body if isinstance(body, dict) else {})
        data = self._validate(body, creating=True)
        self._check_new(data)
        app = self.world.graph.create_app(caller, data)
        return json_response(
            201,
            self._app_json(req, app),
            {"Location": f"{self.base_url}/v1.0/applications/{app.object_id}"},
            ODATA_JSON,
        )

    def get_application(self, req: Request, oid: str) -> Response:
        return json_response(200, self._app_json(req, self._readable(req, oid)), None, ODATA_JSON)

    def get_by_key(self, req: Request, key: str, value: str) -> Response:
        self._caller(req)
        app = self._visible(self._by_key(key, value), f"{key}='{value}'")
        return json_response(200, self._app_json(req, app), None, ODATA_JSON)

    # -- owners [G4][G6]
    def _owner_json(self, owner: str) -> dict[str, Any] | None:
        """An owner as Graph lists it (a directoryObject): a calling app's service principal, or a
        user. An app owner whose service principal is gone is no longer listed."""
        graph = self.world.graph
        sp = graph.sp_by_app_id(owner)
        if sp is not None:
            return {"@odata.type": "#microsoft.graph.servicePrincipal", **sp.to_json()}
        if graph.by_app_id(owner) is not None:
            return None
        upn = owner if "@" in owner else f"{owner}@{self.world.entra.tenant_domain}"
        return {
            "@odata.type": "#microsoft.graph.user",
            "id": stable_guid("user", upn),
            "businessPhones": [],
            "displayName": upn.split("@", 1)[0],
            "givenName": None,
            "jobTitle": None,
            "mail": None,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": None,
            "userPrincipalName": upn,
        }

    def _owners(self, req: Request, app: GraphApp) -> Response:
        owners = [self._owner_json(o) for o in sorted(app.owners)]
        body = {
            "@odata.context": self._context(req, "directoryObjects"),
            "value": [o for o in owners if o is not None],
        }
        return json_response(200, body, None, ODATA_JSON)

    def list_owners(self, req: Request, oid: str) -> Response:
        return self._owners(req, self._readable(req, oid))

    def list_owners_by_key(self, req: Request, key: str, value: str) -> Response:
        self._caller(req)
        return self._owners(req, self._visible(self._by_key(key, value), f"{key}='{value}'"))

    def add_owner(self, req: Request, oid: str) -> Response:
        """Adding owners needs Application.ReadWrite.All [G4]: refused under OwnedBy, owned app or not."""
        self._readable(req, oid)
        raise _denied()

    def update_application(self, req: Request, oid: str) -> Response:
        caller = self._caller(req)
        app = self._app(req, oid)
        self._update(caller, app, req.json())
        return empty(204)

    def _update(self, caller: str, app: GraphApp, body: Any) -> None:
        self._quota(caller, app.data, body if isinstance(body, dict) else {})
        data = self._validate(body, creating=False, app=app)
        after = _merged(app.data, data)
        if _personal(after):
            _check_personal(after, len(app.password_credentials))
        self._apply(app, data)

    def _check_new(self, data: dict[str, Any]) -> None:
        after = _merged(default_app_data(str(data.get("displayName") or ""), self.world.entra.tenant_domain), data)
        if _personal(after):
            _check_personal(after, 0)

    def patch_by_key(self, req: Request, key: str, value: str) -> Response:
        caller = self._caller(req)
        wanted = value.replace("''", "'")
        app = self._by_key(key, value)
        if app is not None:
            # Upsert by alternate key reads the primary replica: no replication delay here.
            self._owned(caller, app)
            self._update(caller, app, req.json())
            return empty(204)
        create = "create-if-missing" in req.header("Prefer").lower()
        if not create or key != "uniqueName":
            raise _not_found(f"{key}='{wanted}'")
        body = req.json()
        self._quota(caller, body if isinstance(body, dict) else {})
        if isinstance(body, dict) and body.get("uniqueName", wanted) != wanted:
            raise _bad("Property 'uniqueName' in the payload does not match the key in the request URL.")
        data = self._validate({**(body or {}), "uniqueName": wanted}, creating=True)
        self._check_new(data)
        app = self.world.graph.create_app(caller, data)
        return json_response(
            201,
            self._app_json(req, app),
            {"Location": f"{self.base_url}/v1.0/applications/{app.object_id}"},
            ODATA_JSON,
        )

    def _delete(self, app: GraphApp) -> Response:
        graph = self.world.graph
        graph.apps.pop(app.object_id, None)
        self.world.publisher.logos.pop(app.object_id, None)
        sp = graph.sp_by_app_id(app.app_id)
        if sp is not None:
            graph.service_principals.pop(sp.object_id, None)
        return empty(204)

    def delete_application(self, req: Request, oid: str) -> Response:
        caller = self._caller(req)
        app = self._app(req, oid)
        self._quota(caller, app.data)
        return self._delete(app)

    def delete_by_key(self, req: Request, key: str, value: str) -> Response:
        caller = self._caller(req)
        app = self._owned(caller, self._visible(self._by_key(key, value), f"{key}='{value}'"))
        self._quota(caller, app.data)
        return self._delete(app)

    def list_applications(self, req: Request) -> Response:
        self._caller(req)
        predicate = _parse_filter(req.q("$filter"))
        # Every application of the directory, owned or not [G3].
        apps = sorted(
            (a for a in self.world.graph.apps.values() if predicate(a)),
            key=lambda a: (a.created, a.object_id),
        )
        top_raw = req.q("$top")
        try:
            top = int(top_raw) if top_raw else PAGE_SIZE
        except ValueError:
            raise _bad(
                f"Invalid page size specified: '{top_raw}'. Must be between 1 and 999 inclusive.",
                "Request_UnsupportedQuery",
            ) from None
        if not 1 <= top <= 999:
            raise _bad(
                f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
                "Request_UnsupportedQuery",
            )
        offset = _decode_skiptoken(req.q("$skiptoken"))
        page = apps[offset : offset + top]
        body: dict[str, Any] = {"@odata.context": self._context(req, "applications")}
        if req.q("$count") == "true":
            body["@odata.count"] = len(apps)
        body["value"] = [self._app_json(req, a, entity=False) for a in page]
        if offset + top < len(apps):
            query = [f"$skiptoken={_encode_skiptoken(offset + top)}", f"$top={top}"]
            for name in ("$filter", "$select", "$count"):
                if req.q(name):
                    query.append(f"{name}={_quote(req.q(name) or '')}")
            body["@odata.nextLink"] = f"{self.base_url}/v1.0/applications?{'&'.join(query)}"
        return json_response(200, body, None, ODATA_JSON)

    # -- credentials
    def add_password(self, req: Request, oid: str) -> Response:
        caller = self._caller(req)
        app = self._app(req, oid)
        self._quota(caller, app.data)
        held = len(app.password_credentials)
        if _personal(app.data) and held >= 2:
            raise HttpError(
                400,
                "TooManyAppPasswords",
                f"Not allowed to add {held + 1} passwords. You can only add a maximum of 2 passwords.",
                details=[{"target": "passwordCredentials", "code": "TooManyAppPasswords"}],
            )
        body = req.json() or {}
        cred_in = body.get("passwordCredential") if isinstance(body, dict) else None
        cred_in = cred_in if isinstance(cred_in, dict) else {}
        now = self.world.clock.now()
        start = _parse_dt(cred_in["startDateTime"], "startDateTime") if cred_in.get("startDateTime") else now
        end = _parse_dt(cred_in["endDateTime"], "endDateTime") if cred_in.get("endDateTime") else add_years(start, 2)
        if end <= start:
            raise _bad("Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.")
        policy = self.world.graph.lifetime_policy(app)
        if policy is not None and end - start > timedelta(days=policy.max_days):
            # [G8]: the message names the policy, never the allowed maximum.
            message = f"Credential lifetime exceeds the max value allowed as per assigned policy '{policy.id}'."
            raise HttpError(
                400,
                "CredentialInvalidLifetimeAsPerAppPolicy",
                message,
                details=[{"code": "InvalidKeyEndDate", "message": message, "target": "EndDate"}],
            )
        display = cred_in.get("displayName")
        cred = self.world.graph.new_password(app, str(display) if display is not None else None, start, end)
        out = {
            "@odata.context": self._context(req, "microsoft.graph.passwordCredential"),
            **cred.to_json(secret_text=cred.secret),
        }
        return json_response(200, out, None, ODATA_JSON)

    def remove_password(self, req: Request, oid: str) -> Response:
        caller = self._caller(req)
        app = self._app(req, oid)
        self._quota(caller, app.data)
        body = req.json()
        key_id = body.get("keyId") if isinstance(body, dict) else None
        try:
            key = str(uuid.UUID(str(key_id)))
        except ValueError:
            raise _bad("Invalid value specified for property 'keyId' of resource 'PasswordCredential'.") from None
        if not self.world.graph.remove_password_direct(app.object_id, key):
            # Graph answers an unknown keyId with 400 and this message (not 404).
            raise _bad(f"No password credential found with keyId '{key}'.")
        return empty(204)

    # -- service principals
    def create_service_principal(self, req: Request) -> Response:
        caller = self._caller(req)
        body = req.json()
        app_id = body.get("appId") if isinstance(body, dict) else None
        if not isinstance(app_id, str) or not app_id:
            raise _bad("Required property 'appId' is missing or empty.")
        graph = self.world.graph
        app = graph.by_app_id(app_id)
        if app is None:
            raise _sp_no_app(app_id)
        if not graph.replicated(app.created):
            # Right after the app's creation Graph does not resolve it yet [G12].
            if graph.sp_denied_while_replicating:
                raise HttpError(403, "Authorization_RequestDenied", _SP_BACKING_APP)
            raise _sp_no_app(app_id)
        if caller not in app.owners:
            raise HttpError(403, "Authorization_RequestDenied", _SP_BACKING_APP)  # [G5][G12]
        if graph.sp_by_app_id(app_id) is not None:
            raise HttpError(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                f"The service principal cannot be created, updated, or restored because the service "
                f"principal name {app_id} is already in use.",
            )
        sp = ServicePrincipal(str(uuid.uuid4()), app.app_id, app.display_name, self.world.clock.now(), {caller})
        graph.service_principals[sp.object_id] = sp
        out = {"@odata.context": self._context(req, "servicePrincipals/$entity"), **sp.to_json()}
        return json_response(201, out, None, ODATA_JSON)

    def _sp_json(self, req: Request, sp: ServicePrincipal | None, ident: str) -> Response:
        if sp is None or not self.world.graph.replicated(sp.created):
            raise _not_found(ident)
        out = {"@odata.context": self._context(req, "servicePrincipals/$entity"), **sp.to_json()}
        return json_response(200, out, None, ODATA_JSON)

    def get_sp_by_app_id(self, req: Request, app_id: str) -> Response:
        self._caller(req)
        return self._sp_json(req, self.world.graph.sp_by_app_id(app_id), f"appId='{app_id}'")

    def get_sp(self, req: Request, oid: str) -> Response:
        self._caller(req)
        return self._sp_json(req, self.world.graph.service_principals.get(oid), oid)

    # -- going to production: the logo [BR] and the verified publisher [SVP][PV1][PV2] (issue 14)
    def put_logo(self, req: Request, oid: str) -> Response:
        """PUT .../logo: the image as the body, its type in Content-Type. The owner (OwnedBy) may. The rules
        are the portal's [BR], and so are the refusals here (Graph publishes none: shapes guessed)."""
        caller = self._caller(req)
        app = self._app(req, oid)
        content_type = req.header("Content-Type").partition(";")[0].strip().lower()
        magic = LOGO_CONTENT_TYPES.get(content_type)
        if magic is None:
            raise _bad(f"The content type '{content_type}' is not supported for the application logo.")
        if not req.body or not req.body.startswith(magic):
            raise _bad("The logo is not a valid image of the given content type.")
        if len(req.body) > MAX_LOGO_BYTES:
            raise _bad(f"The logo is larger than the maximum allowed size of {MAX_LOGO_BYTES} bytes.")
        self._quota(caller, app.data)
        self.world.publisher.logos[app.object_id] = StoredLogo(content_type, bytes(req.body))
        digest = hashlib.sha256(req.body).hexdigest()
        ticks = int((self.world.clock.now() - datetime(1, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)
        info = {**_EMPTY_INFO, **(app.data.get("info") or {})}
        # The CDN URL's shape is guessed (a path per upload, a timestamp query).
        info["logoUrl"] = (
            f"https://secure.aadcdn.microsoftonline-p.com/{self.world.entra.tenant_id}/appbranding/"
            f"{digest[:32]}/1/bannerlogo?ts={ticks}"
        )
        app.data["info"] = info
        return empty(204)

    def get_logo(self, req: Request, oid: str) -> Response:
        app = self._readable(req, oid)
        logo = self.world.publisher.logos.get(app.object_id)
        if logo is None:
            raise _not_found(oid)
        return Response(200, logo.data, {"Content-Type": logo.content_type})

    def _publisher_caller(self, req: Request) -> tuple[str, DelegatedGrant]:
        """A signed-in person with delegated Application.ReadWrite.All [SVP]; an application is refused."""
        caller = self._caller(req)  # 401 for no token or an unknown one
        grant = self.world.publisher.delegated(req.header("Authorization")[7:].strip())
        if grant is None:
            raise _app_only_refused()
        if "application.readwrite.all" not in {s.lower() for s in grant.scopes}:
            raise _denied()
        return caller, grant

    def _publisher_app(self, req: Request, oid: str | None, key: str | None, value: str | None) -> GraphApp:
        if oid is not None:
            return self._visible(self.world.graph.apps.get(oid), oid)
        assert key is not None and value is not None
        return self._visible(self._by_key(key, value), f"{key}='{value}'")

    def _may_verify(self, grant: DelegatedGrant, app: GraphApp) -> None:
        operator = self.world.publisher.operator(grant.upn)
        if operator is None or not operator.roles & set(PUBLISHER_ROLES):
            # [PV1] NotAuthorizedToVerifyPublisher, HTTP 403.
            raise HttpError(
                403,
                "NotAuthorizedToVerifyPublisher",
                f"You are not authorized to set the verified publisher property on application ({app.app_id})",
            )

    def set_verified_publisher(
        self, req: Request, oid: str | None = None, key: str | None = None, value: str | None = None
    ) -> Response:
        caller, grant = self._publisher_caller(req)
        app = self._publisher_app(req, oid, key, value)
        self._may_verify(grant, app)
        body = req.json() if req.header("Content-Type").lower().startswith("application/json") else None
        mpn = body.get("verifiedPublisherId") if isinstance(body, dict) else None
        if not isinstance(mpn, str) or not mpn:
            raise _bad(
                "The MPN Id was not provided in the request body or the request content type was not "
                '"application/json".',
                "MPNIdWasNotProvided",
            )
        publisher = self.world.publisher
        domain = str(app.data.get("publisherDomain") or "")
        if not domain:
            raise _bad(
                f"The target application ({app.app_id}) must have a Publisher Domain set. Set a Publisher Domain "
                "and try again.",
                "NoPublisherDomainOnApplication",
            )
        partner = publisher.partners.get(mpn)
        if partner is None:
            raise _bad(
                f"The MPN ID you provided ({mpn}) does not exist, or you do not have access to it. Please provide a "
                "valid MPN ID and try again.",
                "MPNAccountNotFoundOrNoAccess",
            )
        if not partner.vetted:
            raise _bad(
                f"The MPN ID ({mpn}) you provided has not completed the vetting process. Please complete this "
                "process in Partner Center and try again.",
                "MPNAccountNotVetted",
            )
        low = domain.lower()
        matches = low == partner.email_domain or low.endswith("." + partner.email_domain)
        if low.endswith(".onmicrosoft.com") or not (matches or publisher.domain_verified(partner.email_domain)):
            raise _bad(
                f"The target application's Publisher Domain ({domain}) either doesn't match the domain used to "
                f"perform email verification in Partner Center ({partner.email_domain}) or has not been verified. "
                "Ensure these domains match and have been verified then try again.",
                "PublisherDomainMismatch",
            )
        self._quota(caller, app.data)
        app.data["verifiedPublisher"] = {
            "displayName": partner.display_name,
            "verifiedPublisherId": partner.mpn_id,
            "addedDateTime": iso(self.world.clock.now()),
        }
        return empty(204)

    def unset_verified_publisher(
        self, req: Request, oid: str | None = None, key: str | None = None, value: str | None = None
    ) -> Response:
        caller, grant = self._publisher_caller(req)
        app = self._publisher_app(req, oid, key, value)
        self._may_verify(grant, app)
        self._quota(caller, app.data)
        app.data["verifiedPublisher"] = dict(_EMPTY_PUBLISHER)
        return empty(204)


_EMPTY_INFO: dict[str, Any] = {
    "logoUrl": None,
    "marketingUrl": None,
    "privacyStatementUrl": None,
    "supportUrl": None,
    "termsOfServiceUrl": None,
}
_EMPTY_PUBLISHER: dict[str, Any] = {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None}
_INFO_URLS = ("marketingUrl", "privacyStatementUrl", "supportUrl", "termsOfServiceUrl")


def _info(value: Any) -> dict[str, Any]:
    """A PATCH's ``info``: the four URLs (valid http(s) URLs of at most 2048 characters [TOS]); logoUrl is
    read-only and ignored (a PATCH that sends it answers 204 and leaves the logo as it is). Refusals guessed."""
    if not isinstance(value, dict):
        raise _invalid("info")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.startswith("@odata.") or key == "logoUrl":
            continue
        if key not in _INFO_URLS:
            raise _bad(
                f"Property '{key}' does not exist on type 'microsoft.graph.informationalUrl'. Make sure to only use "
                "property names that are defined by the type.",
                "BadRequest",
            )
        if item is not None:
            parts = urlsplit(item) if isinstance(item, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(item) > 2048:
                raise _invalid("info")
        out[key] = item
    return {k: out.get(k) for k in _INFO_URLS}


def _app_only_refused() -> HttpError:
    """setVerifiedPublisher or unsetVerifiedPublisher with an application token. UNCONFIRMED: [SVP] says only
    that application permissions are not supported. The message is the one [PV1] (its 2020 edition, "internal
    logs") gives for an app-only attempt; the status and code are Graph's usual 403, guessed."""
    return HttpError(
        403, "Authorization_RequestDenied", "This operation requires the presence of both a user and an application."
    )


def _quote(value: str) -> str:
    return quote(value, safe="")


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return max(0, int(raw.split(":", 1)[1]))
    except (ValueError, IndexError):
        raise _bad(
            "The specified page token value has expired and can no longer be included in your request.",
            "Directory_ExpiredPageToken",
        ) from None


_EQ = re.compile(r"^\s*(?P<prop>id|appId|displayName|uniqueName)\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*$")
_STARTS = re.compile(r"^\s*startswith\(\s*(?P<prop>displayName|uniqueName)\s*,\s*'(?P<value>(?:[^']|'')*)'\s*\)\s*$")
_TAG = re.compile(r"^\s*tags/any\(\s*(?P<v>\w+)\s*:\s*(?P=v)\s+eq\s+'(?P<value>(?:[^']|'')*)'\s*\)\s*$")


def _eq(prop: str, value: str, app: GraphApp) -> bool:
    return _prop(app, prop).lower() == value


def _starts(prop: str, value: str, app: GraphApp) -> bool:
    return _prop(app, prop).lower().startswith(value)


def _has_tag(value: str, app: GraphApp) -> bool:
    return value in [str(t).lower() for t in app.data.get("tags") or []]


def _prop(app: GraphApp, prop: str) -> str:
    if prop == "id":
        return app.object_id
    if prop == "appId":
        return app.app_id
    return str(app.data.get(prop) or "")


def _parse_filter(expr: str | None) -> Callable[[GraphApp], bool]:
    """Supports the $filter shapes the product uses: eq / startswith / tags/any, joined by 'and'."""
    if not expr:
        return lambda app: True
    checks: list[Callable[[GraphApp], bool]] = []
    for clause in re.split(r"\s+and\s+", expr.strip()):
        if m := _EQ.match(clause):
            checks.append(functools.partial(_eq, m["prop"], m["value"].replace("''", "'").lower()))
        elif m := _STARTS.match(clause):
            checks.append(functools.partial(_starts, m["prop"], m["value"].replace("''", "'").lower()))
        elif m := _TAG.match(clause):
            checks.append(functools.partial(_has_tag, m["value"].replace("''", "'").lower()))
        else:
            raise _bad(
                f"Unsupported or invalid query filter clause specified for property of resource "
                f"'Application': '{clause.strip()}'.",
                "Request_UnsupportedQuery",
            )
    return lambda app: all(check(app) for check in checks)
