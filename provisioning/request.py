"""The provisioning request: parsing and validation, with no outside call.

Every rejection names the field (a JSON path such as ``auth.redirectUri``) so a
caller can fix the request without reading our code. The OpenAPI document
(docs/openapi.yaml) describes the same shape; a test keeps them in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from core.record import SLUG, NylasTarget

MAX_BODY_BYTES = 64 * 1024
MAX_DISPLAY_NAME = 120
MAX_TENANT = 40
LIFETIME_RANGE = (1, 730)  # Entra's portal offers at most 24 months; longer is refused here, not by Graph
ROTATE_BEFORE_RANGE = (1, 365)

HOSTED_REDIRECTS = {
    "us": "https://api.nylas.com/oauth/callback",
    "eu": "https://ireland.api.nylas.com/oauth/callback",
}
AUDIENCES = {"multi-org": "AzureADMultipleOrgs", "single-org": "AzureADMyOrg"}
REGIONS = ("us", "eu")


@dataclass(frozen=True)
class NylasSpec:
    target: NylasTarget
    region: str
    app_id: str
    credential: str = field(default="", repr=False)  # inline; stored at once, never echoed
    credential_secret: str = ""  # or: the name of a Key Vault secret that holds it


@dataclass(frozen=True)
class ProvisionRequest:
    tenant: str
    display_name: str
    audience: str
    redirect_uri: str
    auth_mode: str
    nylas: NylasSpec
    lifetime_days: int
    rotate_before_days: int
    existing_app_id: str = ""

    @property
    def sign_in_audience(self) -> str:
        return AUDIENCES[self.audience]


def _fields(obj: dict[str, Any], where: str, required: set[str], optional: set[str]) -> None:
    for key in obj:
        if key not in required | optional:
            raise BadRequest(f"unknown field {key!r}", field=f"{where}{key}")
    for key in sorted(required):
        if key not in obj:
            raise BadRequest(f"missing required field {key!r}", field=f"{where}{key}")


def _str(obj: dict[str, Any], key: str, where: str, *, max_len: int = 256, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string", field=f"{where}{key}")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{key} must not be empty", field=f"{where}{key}")
    if len(value) > max_len:
        raise BadRequest(f"{key} is longer than {max_len} characters", field=f"{where}{key}")
    return value


def _int(obj: dict[str, Any], key: str, default: int, bounds: tuple[int, int]) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be a whole number of days", field=key)
    low, high = bounds
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}, got {value}", field=key)
    return value


def validate_redirect_uri(uri: str, where: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme != "https":
        raise BadRequest("redirectUri must use https", field=where)
    if not parts.hostname:
        raise BadRequest("redirectUri must name a host", field=where)
    if "*" in uri:
        raise BadRequest("redirectUri must not contain a wildcard", field=where)
    if parts.fragment or "#" in uri:
        raise BadRequest("redirectUri must not contain a fragment", field=where)
    if len(uri) > 256:
        raise BadRequest("redirectUri is longer than 256 characters", field=where)
    return uri


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes", field="body")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json", field="Content-Type")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc.__class__.__name__}", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", field="body")
    return data


def parse_request(
    data: dict[str, Any], *, default_lifetime_days: int = 730, default_rotate_before_days: int = 30
) -> ProvisionRequest:
    _fields(
        data,
        "",
        {"tenant", "displayName", "auth", "nylas"},
        {"audience", "secretLifetimeDays", "rotateBeforeDays", "existingAppId"},
    )
    tenant = _str(data, "tenant", "", max_len=MAX_TENANT)
    if not SLUG.match(tenant):
        raise BadRequest(
            "tenant must be lowercase letters, digits and single dashes (e.g. acme-eu), 1 to 40 characters",
            field="tenant",
        )
    display_name = _str(data, "displayName", "", max_len=MAX_DISPLAY_NAME)
    audience = data.get("audience", "multi-org")
    if audience not in AUDIENCES:
        raise BadRequest(f"audience must be one of {sorted(AUDIENCES)}", field="audience")

    auth = data["auth"]
    if not isinstance(auth, dict):
        raise BadRequest("auth must be an object", field="auth")
    mode = auth.get("mode")
    if mode == "hosted":
        _fields(auth, "auth.", {"mode", "region"}, set())
        region = auth["region"]
        if region not in HOSTED_REDIRECTS:
            raise BadRequest(f"auth.region must be one of {list(REGIONS)}", field="auth.region")
        redirect = HOSTED_REDIRECTS[region]
    elif mode == "native":
        _fields(auth, "auth.", {"mode", "redirectUri"}, set())
        redirect = validate_redirect_uri(_str(auth, "redirectUri", "auth."), "auth.redirectUri")
    else:
        raise BadRequest("auth.mode must be hosted or native", field="auth.mode")

    nylas = data["nylas"]
    if not isinstance(nylas, dict):
        raise BadRequest("nylas must be an object", field="nylas")
    _fields(nylas, "nylas.", {"target", "region", "appId"}, {"credential", "credentialSecret"})
    try:
        target = NylasTarget(nylas["target"])
    except (ValueError, TypeError):
        targets = [t.value for t in NylasTarget]
        raise BadRequest(f"nylas.target must be one of {targets}", field="nylas.target") from None
    if nylas["region"] not in REGIONS:
        raise BadRequest(f"nylas.region must be one of {list(REGIONS)}", field="nylas.region")
    app_id = _str(nylas, "appId", "nylas.", max_len=128)
    credential = _str(nylas, "credential", "nylas.", max_len=1024, required=False)
    credential_secret = _str(nylas, "credentialSecret", "nylas.", max_len=127, required=False)
    if credential and credential_secret:
        raise BadRequest("give nylas.credential or nylas.credentialSecret, not both", field="nylas.credential")
    if target is not NylasTarget.MANUAL and not (credential or credential_secret):
        raise BadRequest(
            f"target {target.value} needs the Nylas app's credential: nylas.credential or nylas.credentialSecret",
            field="nylas.credential",
        )
    if target is NylasTarget.MANUAL and (credential or credential_secret):
        raise BadRequest("the manual target takes no Nylas credential", field="nylas.credential")
    if credential_secret and not all(c.isalnum() or c == "-" for c in credential_secret):
        raise BadRequest("nylas.credentialSecret must be a Key Vault secret name", field="nylas.credentialSecret")

    lifetime = _int(data, "secretLifetimeDays", default_lifetime_days, LIFETIME_RANGE)
    rotate_before = _int(data, "rotateBeforeDays", default_rotate_before_days, ROTATE_BEFORE_RANGE)
    if rotate_before >= lifetime:
        raise BadRequest("rotateBeforeDays must be shorter than secretLifetimeDays", field="rotateBeforeDays")
    existing = _str(data, "existingAppId", "", max_len=36, required=False)
    if existing and not _is_guid(existing):
        raise BadRequest("existingAppId must be an application (client) id, a GUID", field="existingAppId")

    return ProvisionRequest(
        tenant=tenant,
        display_name=display_name,
        audience=audience,
        redirect_uri=redirect,
        auth_mode=mode,
        nylas=NylasSpec(target, nylas["region"], app_id, credential, credential_secret),
        lifetime_days=lifetime,
        rotate_before_days=rotate_before,
        existing_app_id=existing.lower(),
    )


def _is_guid(value: str) -> bool:
    parts = value.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(c in "0123456789abcdefABCDEF" for p in parts for c in p)
