"""Azure Key Vault secrets (data plane), soft delete and purge protection included.

Authentication follows Key Vault's challenge protocol: a request without a
bearer token gets 401 plus a WWW-Authenticate challenge naming the emulated
Entra authority; then tokens issued by the Entra emulator for the vault
resource are accepted for identities in ``world.keyvault.allowed_clients``.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ._http import HttpError, Request, Response, Service, empty, json_response
from .world import VAULT_RESOURCE, DeletedSecret, SecretEntry, SecretVersion, World

MAX_PAGE = 25
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_TAG_CHARS = 256
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


def _not_found(name: str) -> HttpError:
    return HttpError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted this "
        "secret you may be able to recover it using the correct recovery command. For help resolving "
        "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
    )


def _bad(message: str) -> HttpError:
    return HttpError(400, "BadParameter", message)


class KeyVaultService(Service):
    name = "keyvault"

    def __init__(self, world: World, entra_url_getter: Any) -> None:
        super().__init__(world)
        self._entra_url = entra_url_getter
        n = r"(?P<name>[^/]*)"
        self.add("PUT", r"/secrets/" + n, "keyvault.set_secret", self.set_secret)
        self.add("GET", r"/secrets", "keyvault.list_secrets", self.list_secrets)
        self.add("GET", r"/secrets/" + n + r"/versions", "keyvault.list_versions", self.list_versions)
        self.add("GET", r"/secrets/" + n + r"(?:/(?P<version>[^/]*))?", "keyvault.get_secret", self.get_secret)
        self.add("PATCH", r"/secrets/" + n + r"(?:/(?P<version>[^/]*))?", "keyvault.update_secret", self.update_secret)
        self.add("DELETE", r"/secrets/" + n, "keyvault.delete_secret", self.delete_secret)
        self.add("GET", r"/deletedsecrets", "keyvault.list_deleted_secrets", self.list_deleted)
        self.add("GET", r"/deletedsecrets/" + n, "keyvault.get_deleted_secret", self.get_deleted)
        self.add("POST", r"/deletedsecrets/" + n + r"/recover", "keyvault.recover_deleted_secret", self.recover)
        self.add("DELETE", r"/deletedsecrets/" + n, "keyvault.purge_deleted_secret", self.purge)

    # -- auth and wire format
    @property
    def challenge(self) -> str:
        return f'Bearer authorization="{self._entra_url()}/{self.world.entra.tenant_id}", resource="{VAULT_RESOURCE}"'

    def match(self, req: Request) -> tuple[str, Any]:
        if not req.header("Authorization"):
            # The SDK's first, bodiless request: answered with the challenge whatever the path.
            return "keyvault.challenge", self._challenge
        return super().match(req)

    def _challenge(self, req: Request) -> Response:
        return self.error_response(req, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")

    def error_response(
        self, req: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        out = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-keyvault-service-version": "1.9.0.0", **(headers or {})}
        if status == 401:
            out["WWW-Authenticate"] = self.challenge
        error: dict[str, Any] = {"code": code, "message": message}
        inner = {"SecretDisabled": "SecretDisabled", "PurgeProtectionEnabled": "PurgeProtectionEnabled"}.get(
            req.context.get("inner", "")
        )
        if inner:
            error["innererror"] = {"code": inner}
        return json_response(status, {"error": error}, out)

    def default_code(self, status: int) -> str:
        return {429: "Throttled", 400: "BadParameter", 404: "NotFound"}.get(status, super().default_code(status))

    def unknown_route(self, req: Request) -> Response:
        return self.error_response(req, 400, "BadParameter", f"The request URI contains an invalid path: {req.path}")

    def _authorize(self, req: Request, operation: str) -> None:
        self._check_api_version(req)
        auth = req.header("Authorization")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        issued = self.world.entra.check_token(token) if token else None
        if issued is None:
            raise HttpError(
                401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of the issuers of the emulated tenant."
            )
        if issued.resource != VAULT_RESOURCE:
            raise HttpError(
                401, "Unauthorized", f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {issued.resource}."
            )
        if issued.client_id not in self.world.keyvault.allowed_clients:
            raise HttpError(
                403,
                "Forbidden",
                f"The user, group or application 'appid={issued.client_id};"
                f"iss=https://sts.windows.net/{self.world.entra.tenant_id}/' does not have secrets "
                f"{operation} permission on key vault 'emulator'.",
            )
        self.world.keyvault.expire_deleted()

    def _check_api_version(self, req: Request) -> None:
        if not req.q("api-version"):
            raise _bad("The api-version query parameter (?api-version=) is required for all requests.")

    def _name(self, name: str) -> str:
        if not _NAME.match(name):
            raise _bad(f"The request URI contains an invalid name: {name}")
        return name

    # -- JSON shapes
    def _id(self, name: str, version: str | None = None) -> str:
        return f"{self.base_url}/secrets/{name}" + (f"/{version}" if version else "")

    def _attributes(self, v: SecretVersion) -> dict[str, Any]:
        attrs: dict[str, Any] = {"enabled": v.enabled}
        if v.nbf is not None:
            attrs["nbf"] = v.nbf
        if v.exp is not None:
            attrs["exp"] = v.exp
        attrs.update(
            created=v.created,
            updated=v.updated,
            recoveryLevel=self.world.keyvault.recovery_level,
            recoverableDays=self.world.keyvault.retention_days,
        )
        return attrs

    def _bundle(self, entry: SecretEntry, v: SecretVersion, *, value: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if value:
            out["value"] = v.value
        out["id"] = self._id(entry.name, v.version)
        if v.content_type is not None:
            out["contentType"] = v.content_type
        out["attributes"] = self._attributes(v)
        if v.tags is not None:
            out["tags"] = v.tags
        return out

    def _item(self, entry: SecretEntry, v: SecretVersion, *, with_version: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self._id(entry.name, v.version if with_version else None),
            "attributes": self._attributes(v),
        }
        if v.tags is not None:
            out["tags"] = v.tags
        if v.content_type is not None:
            out["contentType"] = v.content_type
        return out

    def _deleted_fields(self, d: DeletedSecret) -> dict[str, Any]:
        return {
            "recoveryId": f"{self.base_url}/deletedsecrets/{d.entry.name}",
            "deletedDate": d.deleted,
            "scheduledPurgeDate": d.scheduled_purge,
        }

    def _page(self, req: Request, entries: list[Any], build: Callable[[Any], dict[str, Any]], path: str) -> Response:
        """One page of a listing; only that page's items are built (a vault listing stays linear)."""
        raw = req.q("maxresults")
        try:
            size = int(raw) if raw else MAX_PAGE
        except ValueError:
            raise _bad(f"Invalid value for maxresults: {raw}") from None
        if not 1 <= size <= MAX_PAGE:
            raise _bad(f"The value {size} for maxresults is out of range. It must be between 1 and {MAX_PAGE}.")
        kind, offset = "offset", 0
        token = req.q("$skiptoken")
        if token:
            try:
                kind, raw_offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":", 1)
                offset = int(raw_offset)
            except (ValueError, IndexError):
                raise _bad("Invalid $skiptoken.") from None

        def link(kind: str, offset: int) -> str:
            skip = base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode().rstrip("=")
            version = quote(req.q("api-version") or "", safe="")
            return f"{self.base_url}{path}?api-version={version}&$skiptoken={skip}&maxresults={size}"

        if self.world.keyvault.empty_pages and kind != "page":
            # [K2]: a page may hold nothing and still name the next one; only nextLink ends a listing.
            return json_response(200, {"value": [], "nextLink": link("page", offset)})
        body: dict[str, Any] = {"value": [build(e) for e in entries[offset : offset + size]], "nextLink": None}
        if offset + size < len(entries):
            body["nextLink"] = link("offset", offset + size)
        return json_response(200, body)

    # -- lookups
    def _entry(self, name: str) -> SecretEntry:
        entry = self.world.keyvault.secrets.get(name.lower())
        if entry is None:
            raise _not_found(name)
        return entry

    def _version(self, name: str, version: str | None) -> tuple[SecretEntry, SecretVersion]:
        entry = self._entry(name)
        if not version:
            return entry, entry.latest
        found = entry.find(version)
        if found is None:
            raise _not_found(f"{name}/{version}")
        return entry, found

    # -- routes
    def set_secret(self, req: Request, name: str) -> Response:
        self._authorize(req, "set")
        self._name(name)
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise _bad("Property 'value' is required and must be a string.")
        value: str = body["value"]
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise _bad(f"The secret value exceeds the maximum allowed size of {MAX_VALUE_BYTES} bytes.")
        tags = self._tags(body.get("tags"))
        attrs = body.get("attributes") or {}
        kv = self.world.keyvault
        if name.lower() in kv.deleted:
            raise HttpError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its "
                "name cannot be reused; in this state, the secret can only be recovered or purged.",
            )
        now = int(self.world.clock.now().timestamp())
        version = SecretVersion(
            version=uuid.uuid4().hex,
            value=value,
            content_type=body.get("contentType"),
            enabled=bool(attrs.get("enabled", True)),
            nbf=_int_or_none(attrs.get("nbf")),
            exp=_int_or_none(attrs.get("exp")),
            created=now,
            updated=now,
            tags=tags,
        )
        entry = kv.secrets.setdefault(name.lower(), SecretEntry(name))
        entry.versions.append(version)
        return json_response(200, self._bundle(entry, version))

    def _tags(self, tags: Any) -> dict[str, str] | None:
        if tags is None:
            return None
        if not isinstance(tags, dict) or any(not isinstance(v, str) for v in tags.values()):
            raise _bad("Tags must be an object of string values.")
        if len(tags) > MAX_TAGS:
            raise _bad(f"The number of tags ({len(tags)}) exceeds the maximum of {MAX_TAGS}.")
        for key, value in tags.items():
            if len(key) > MAX_TAG_CHARS or len(value) > MAX_TAG_CHARS:
                raise _bad(f"Tag names and values are limited to {MAX_TAG_CHARS} characters.")
        return dict(tags)

    def get_secret(self, req: Request, name: str, version: str | None = None) -> Response:
        self._authorize(req, "get")
        self._name(name)
        entry, found = self._version(name, version)
        if not found.enabled:
            req.context["inner"] = "SecretDisabled"
            raise HttpError(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return json_response(200, self._bundle(entry, found))

    def update_secret(self, req: Request, name: str, version: str | None = None) -> Response:
        self._authorize(req, "set")
        self._name(name)
        entry, found = self._version(name, version)
        body = req.json() or {}
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object.")
        if "tags" in body:
            found.tags = self._tags(body["tags"])
        if "contentType" in body:
            found.content_type = body["contentType"]
        attrs = body.get("attributes") or {}
        if "enabled" in attrs and attrs["enabled"] is not None:
            found.enabled = bool(attrs["enabled"])
        if "nbf" in attrs:
            found.nbf = _int_or_none(attrs["nbf"])
        if "exp" in attrs:
            found.exp = _int_or_none(attrs["exp"])
        found.updated = int(self.world.clock.now().timestamp())
        return json_response(200, self._bundle(entry, found, value=False))

    def list_secrets(self, req: Request) -> Response:
        self._authorize(req, "list")
        entries = sorted(self.world.keyvault.secrets.values(), key=lambda e: e.name.lower())
        return self._page(req, entries, lambda e: self._item(e, e.latest, with_version=False), "/secrets")

    def list_versions(self, req: Request, name: str) -> Response:
        self._authorize(req, "list")
        self._name(name)
        entry = self._entry(name)
        return self._page(
            req, entry.versions, lambda v: self._item(entry, v, with_version=True), f"/secrets/{entry.name}/versions"
        )

    def delete_secret(self, req: Request, name: str) -> Response:
        self._authorize(req, "delete")
        self._name(name)
        entry = self._entry(name)
        kv = self.world.keyvault
        now = int(self.world.clock.now().timestamp())
        deleted = DeletedSecret(entry, now, now + kv.retention_days * 86400)
        del kv.secrets[name.lower()]
        kv.deleted[name.lower()] = deleted
        return json_response(200, {**self._deleted_fields(deleted), **self._bundle(entry, entry.latest, value=False)})

    def _deleted(self, name: str) -> DeletedSecret:
        found = self.world.keyvault.deleted.get(name.lower())
        if found is None:
            raise HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return found

    def get_deleted(self, req: Request, name: str) -> Response:
        self._authorize(req, "get")
        self._name(name)
        d = self._deleted(name)
        return json_response(200, {**self._deleted_fields(d), **self._bundle(d.entry, d.entry.latest, value=False)})

    def list_deleted(self, req: Request) -> Response:
        self._authorize(req, "list")
        deleted = sorted(self.world.keyvault.deleted.values(), key=lambda d: d.entry.name.lower())
        return self._page(
            req,
            deleted,
            lambda d: {**self._deleted_fields(d), **self._item(d.entry, d.entry.latest, with_version=False)},
            "/deletedsecrets",
        )

    def recover(self, req: Request, name: str) -> Response:
        self._authorize(req, "recover")
        self._name(name)
        d = self._deleted(name)
        kv = self.world.keyvault
        del kv.deleted[name.lower()]
        kv.secrets[name.lower()] = d.entry
        return json_response(200, self._bundle(d.entry, d.entry.latest, value=False))

    def purge(self, req: Request, name: str) -> Response:
        self._authorize(req, "purge")
        self._name(name)
        self._deleted(name)
        kv = self.world.keyvault
        if kv.purge_protection:
            req.context["inner"] = "PurgeProtectionEnabled"
            raise HttpError(
                403,
                "Forbidden",
                'Operation "purge" is not allowed because purge protection is '
                "enabled for this vault. Key Vault service will automatically purge it after the "
                "retention period has passed.",
            )
        del kv.deleted[name.lower()]
        return empty(204)


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("Attribute timestamps must be integer unix seconds.")
    return int(value)
