"""The provisioning request: parsing and validation, with no outside call.

Every rejection names the field (a JSON path such as ``auth.redirectUri``) so a
caller can fix the request without reading our code, and no rejection quotes a
value the caller sent (a misplaced credential must not come back in an answer).

The OpenAPI document (docs/openapi.yaml) describes the same shape. The limits,
patterns and enums below are the single source: tests/test_openapi.py checks the
document against these constants and checks that the document and ``parse_request``
accept and reject the same requests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from core.record import SLUG, Audience, NylasTarget
from provisioning.graph_scopes import ALWAYS, DEFAULT_SCOPES, MAX_PERMISSIONS_PER_API, canonical

MAX_BODY_BYTES = 64 * 1024
# PATCH /api/tenants/{tenant} (branding only) may carry a logo of MAX_LOGO_BYTES in base64: 4/3 of it and some.
MAX_BRANDING_BODY_BYTES = 144 * 1024
MAX_DISPLAY_NAME = 120  # Graph's limit for an application's displayName
MAX_DISPLAY_NAME_PERSONAL = 90  # ... for an app that also signs in personal accounts (E1)
MAX_SCOPE_NAME = 100
MAX_TENANT = 40
MAX_APP_ID = 128
MAX_CREDENTIAL = 1024
MAX_REDIRECT_URI = 256  # Entra's limit for a redirect URI
LIFETIME_RANGE = (1, 730)  # Entra's portal offers at most 24 months; longer is refused here, not by Graph
ROTATE_BEFORE_RANGE = (1, 365)

# Patterns are written so that Python's ``re`` and ECMA-262 (what OpenAPI tools use) read them
# alike: ASCII classes and \x escapes only. The parser applies them with ``fullmatch``.
TENANT_PATTERN = SLUG.pattern
# Printable text with at least one character that is not blank, Unicode blanks included (the
# name is trimmed with str.strip, which removes them: "\u3000" alone would become "", which Graph
# refuses only after our first writes); no control characters.
DISPLAY_NAME_PATTERN = (
    r"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f]*$"
)
# A Nylas application id (v3) or client id (v2).
APP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# A v3 API key or a v2 client secret: printable ASCII, no spaces.
CREDENTIAL_PATTERN = r"^[\x21-\x7e]+$"
# A Key Vault secret name.
CREDENTIAL_SECRET_PATTERN = r"^[0-9A-Za-z-]{1,127}$"
# https only, a DNS host name, an optional port, an optional path and query; no fragment,
# no wildcard, no user info, no whitespace (Entra's rules for a web redirect URI).
REDIRECT_URI_PATTERN = (
    r"^https://[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?(?:[/?][\x21\x22\x24-\x29\x2b-\x7e]*)?$"
)
GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# Branding: the app's ``info`` URLs (Graph's informationalUrl) and its logo (PUT /applications/{id}/logo).
# Entra takes http or https, at most 2048 characters, for the terms of service and privacy statement links
# (learn.microsoft.com/entra/identity-platform/howto-add-terms-of-service-privacy-statement); we take https only.
MAX_INFO_URL = 2048
INFO_URL_PATTERN = (
    r"^https://[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?(?:[/?#][\x21-\x7e]*)?$"
)
# Request field -> Graph's informationalUrl property (the same names).
BRANDING_URL_FIELDS = ("marketingUrl", "privacyStatementUrl", "supportUrl", "termsOfServiceUrl")
BRANDING_FIELDS = frozenset({*BRANDING_URL_FIELDS, "logo"})
LOGO_FIELDS = frozenset({"contentType", "base64"})
# The app registration portal's logo rules: .png, .jpg or .bmp, under 100 KB, 215x215 pixels recommended
# (Microsoft Graph documents no limit of its own for PUT /applications/{id}/logo). Each type's first bytes.
MAX_LOGO_BYTES = 100 * 1024
LOGO_TYPES = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",), "image/bmp": (b"BM",)}
LOGO_TYPE_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/bmp": "BMP"}

# Nylas hosted auth's callback, per API generation and region (world-facts "What changed" 3).
HOSTED_REDIRECTS = {
    2: {"us": "https://api.nylas.com/oauth/callback", "eu": "https://ireland.api.nylas.com/oauth/callback"},
    3: {"us": "https://api.us.nylas.com/v3/connect/callback", "eu": "https://api.eu.nylas.com/v3/connect/callback"},
}
AUDIENCES = {a.value: a.sign_in_audience for a in Audience}
# v3's app signs in work and personal accounts; the v2 app, work accounts only (world-facts "What changed" 2).
DEFAULT_AUDIENCES = {3: Audience.ANY_ORG_AND_PERSONAL.value, 2: Audience.MULTI_ORG.value}
DEFAULT_AUDIENCE = DEFAULT_AUDIENCES[3]
REGIONS = ("us", "eu")
# "custom" is Nylas v3's name for your own callback (v2 said "native"); both mean the same here.
AUTH_MODES = ("hosted", "custom", "native")
TARGETS = tuple(t.value for t in NylasTarget)
DEFAULT_TARGET = NylasTarget.V3_CREDENTIAL.value

# Field names, required and optional, per object: the schema's `required` and `properties`.
TOP_REQUIRED = frozenset({"tenant", "displayName", "auth", "nylas"})
TOP_OPTIONAL = frozenset(
    {"audience", "secretLifetimeDays", "rotateBeforeDays", "existingAppId", "scopes", "replaces", "branding"}
)
HOSTED_AUTH_FIELDS = frozenset({"mode", "region"})
NATIVE_AUTH_FIELDS = frozenset({"mode", "redirectUri"})
NYLAS_REQUIRED = frozenset({"region", "appId"})
NYLAS_OPTIONAL = frozenset({"target", "credential", "credentialSecret"})

_ALLOWED_CHARSETS = {"", "utf-8", "utf8"}


@dataclass(frozen=True)
class NylasSpec:
    target: NylasTarget
    region: str
    app_id: str
    credential: str = field(default="", repr=False)  # inline; stored at once, never echoed
    credential_secret: str = ""  # or: the name of a Key Vault secret that holds it


@dataclass(frozen=True)
class Logo:
    """An image for the app's logo, checked here: its type, its first bytes, its size."""

    content_type: str  # a LOGO_TYPES key
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Branding:
    """What people see of the app when they consent: ``info`` URLs and the logo. None leaves a field as it is
    (there is no way to remove one here: do that in the portal)."""

    marketing_url: str | None = None
    privacy_statement_url: str | None = None
    support_url: str | None = None
    terms_of_service_url: str | None = None
    logo: Logo | None = None


@dataclass(frozen=True)
class ProvisionRequest:
    tenant: str
    display_name: str
    audience: str  # an Audience value
    redirect_uri: str
    auth_mode: str
    nylas: NylasSpec
    lifetime_days: int
    rotate_before_days: int
    existing_app_id: str = ""
    scopes: tuple[str, ...] = ()  # v3: Graph delegated scope names; v2: () (the v2 manifest)
    replaces: str = ""  # v3: the v2 tenant this one replaces
    branding: Branding | None = None  # applied to the app, idempotently (provisioning/branding.py)

    @property
    def sign_in_audience(self) -> str:
        return AUDIENCES[self.audience]

    @property
    def generation(self) -> int:
        return self.nylas.target.generation


def _name(key: str) -> str:
    """A field name fit to quote back: short, and printable."""
    short = key if len(key) <= 64 else key[:64] + "…"
    return short.encode("ascii", "backslashreplace").decode("ascii")


def _fields(obj: dict[str, Any], where: str, required: frozenset[str], optional: frozenset[str]) -> None:
    for key in obj:
        if key not in required | optional:
            raise BadRequest(f"unknown field {_name(key)!r}", field=f"{where}{_name(key)}")
    for key in sorted(required):
        if key not in obj:
            raise BadRequest(f"missing required field {key!r}", field=f"{where}{key}")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{path} must be an object", field=path)
    return value


def _text(obj: dict[str, Any], key: str, where: str, pattern: str, max_len: int, what: str) -> str:
    """A present string field that matches ``pattern`` in full and is at most ``max_len`` long.
    The message says what is expected, never what was sent."""
    path = f"{where}{key}"
    value = obj[key]
    if not isinstance(value, str):
        raise BadRequest(f"{path} must be a string", field=path)
    if len(value) > max_len:
        raise BadRequest(f"{path} is longer than {max_len} characters", field=path)
    if not re.fullmatch(pattern, value):
        raise BadRequest(f"{path} must be {what}", field=path)
    return value


def _choice(obj: dict[str, Any], key: str, where: str, choices: tuple[str, ...]) -> str:
    path = f"{where}{key}"
    value = obj[key]
    if not isinstance(value, str) or value not in choices:
        raise BadRequest(f"{path} must be one of {list(choices)}", field=path)
    return value


def _days(obj: dict[str, Any], key: str, bounds: tuple[int, int]) -> int:
    value = obj[key]
    # JSON has one number type: 30.0 is the whole number 30 (as JSON Schema's "integer" says).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be a whole number of days", field=key)
    low, high = bounds
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}", field=key)
    return value


def validate_redirect_uri(uri: str, where: str) -> str:
    if len(uri) > MAX_REDIRECT_URI:
        raise BadRequest(f"redirectUri is longer than {MAX_REDIRECT_URI} characters", field=where)
    if not uri.startswith("https://"):
        raise BadRequest("redirectUri must use https", field=where)
    if "*" in uri:
        raise BadRequest("redirectUri must not contain a wildcard", field=where)
    if "#" in uri:
        raise BadRequest("redirectUri must not contain a fragment", field=where)
    if not re.fullmatch(REDIRECT_URI_PATTERN, uri):
        raise BadRequest(
            "redirectUri must be https://host[:port][/path][?query] with a DNS host name, no user info and no spaces",
            field=where,
        )
    return uri


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"field {_name(key)!r} appears twice", field=_name(key))
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number", field="body")


def parse_body(body: bytes, content_type: str, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes", field="body")
    media, _, params = content_type.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media.strip().lower() != "application/json" or charset not in _ALLOWED_CHARSETS:
        raise UnsupportedMediaType("Content-Type must be application/json (UTF-8)", field="Content-Type")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8", field="body") from None
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError also covers an integer too long to convert; RecursionError, nesting too deep.
        raise BadRequest(f"request body is not valid JSON: {exc.__class__.__name__}", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", field="body")
    _reject_surrogates(data)
    return data


def _reject_surrogates(value: Any, path: str = "") -> None:
    """A JSON string may escape a lone UTF-16 surrogate ("\\ud800"), which no outside system can
    encode: refuse it here rather than fail later."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("text must not contain lone UTF-16 surrogates", field=path or "body") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_surrogates(key, path or "body")
            _reject_surrogates(item, f"{path}.{_name(key)}" if path else _name(key))
    elif isinstance(value, list):
        for item in value:
            _reject_surrogates(item, path or "body")


def parse_request(
    data: Any, *, default_lifetime_days: int = 730, default_rotate_before_days: int = 30
) -> ProvisionRequest:
    data = _object(data, "body")
    _fields(data, "", TOP_REQUIRED, TOP_OPTIONAL)
    tenant = _text(
        data,
        "tenant",
        "",
        TENANT_PATTERN,
        MAX_TENANT,
        "lowercase letters, digits and single dashes (e.g. acme-eu), 1 to 40 characters",
    )
    display_name = _text(
        data,
        "displayName",
        "",
        DISPLAY_NAME_PATTERN,
        MAX_DISPLAY_NAME,
        "printable text with at least one non-blank character",
    ).strip()
    # The Nylas target decides the app's generation, and the generation the rest of the shape.
    nylas = _object(data["nylas"], "nylas")
    _fields(nylas, "nylas.", NYLAS_REQUIRED, NYLAS_OPTIONAL)
    target = NylasTarget(_choice(nylas, "target", "nylas.", TARGETS) if "target" in nylas else DEFAULT_TARGET)
    generation = target.generation
    region = _choice(nylas, "region", "nylas.", REGIONS)
    app_id = _text(nylas, "appId", "nylas.", APP_ID_PATTERN, MAX_APP_ID, "a Nylas application or client id")
    credential = credential_secret = ""
    if "credential" in nylas:
        credential = _text(
            nylas, "credential", "nylas.", CREDENTIAL_PATTERN, MAX_CREDENTIAL, "printable ASCII without spaces"
        )
    if "credentialSecret" in nylas:
        credential_secret = _text(
            nylas, "credentialSecret", "nylas.", CREDENTIAL_SECRET_PATTERN, 127, "a Key Vault secret name"
        )
    if target is NylasTarget.MANUAL and (credential or credential_secret):
        which = "nylas.credential" if credential else "nylas.credentialSecret"
        raise BadRequest("the manual target takes no Nylas credential", field=which)
    if credential and credential_secret:
        raise BadRequest("give nylas.credential or nylas.credentialSecret, not both", field="nylas.credential")
    if target is not NylasTarget.MANUAL and not (credential or credential_secret):
        what = "API key" if generation == 3 else "client secret"
        raise BadRequest(
            f"target {target.value} needs the Nylas application's {what}: nylas.credential or nylas.credentialSecret",
            field="nylas.credential",
        )

    audience = Audience(
        _choice(data, "audience", "", tuple(AUDIENCES)) if "audience" in data else DEFAULT_AUDIENCES[generation]
    )
    if audience.allows_personal and generation == 2:
        raise BadRequest(
            f"target {target.value} is a Nylas v2 target: its app signs in work accounts only "
            "(audience multi-org or single-org)",
            field="audience",
        )
    if audience.allows_personal and len(display_name) > MAX_DISPLAY_NAME_PERSONAL:
        raise BadRequest(
            f"displayName is longer than {MAX_DISPLAY_NAME_PERSONAL} characters, Entra's limit for an app that "
            "signs in personal accounts",
            field="displayName",
        )

    auth = _object(data["auth"], "auth")
    if "mode" not in auth:
        raise BadRequest("missing required field 'mode'", field="auth.mode")
    mode = _choice(auth, "mode", "auth.", AUTH_MODES)
    if mode == "hosted":
        _fields(auth, "auth.", HOSTED_AUTH_FIELDS, frozenset())
        auth_region = _choice(auth, "region", "auth.", REGIONS)
        if generation == 3 and auth_region != region:
            # v3 hosted auth sends users back to the callback of the Nylas application's own region.
            raise BadRequest(
                f"auth.region must be the Nylas application's region ({region}): Nylas v3 hosted auth "
                "returns users to its own region's callback",
                field="auth.region",
            )
        redirect = HOSTED_REDIRECTS[generation][auth_region]
    else:
        _fields(auth, "auth.", NATIVE_AUTH_FIELDS, frozenset())
        if not isinstance(auth["redirectUri"], str):
            raise BadRequest("auth.redirectUri must be a string", field="auth.redirectUri")
        redirect = validate_redirect_uri(auth["redirectUri"], "auth.redirectUri")
        if audience.allows_personal and "?" in redirect:
            raise BadRequest(
                "redirectUri must not have a query string in an app that signs in personal accounts",
                field="auth.redirectUri",
            )

    scopes: tuple[str, ...] = ()
    if generation == 3:
        scopes = _scopes(data["scopes"]) if "scopes" in data else DEFAULT_SCOPES
    elif "scopes" in data:
        raise BadRequest(
            f"target {target.value} is a Nylas v2 target: its app gets the v2 permission manifest, not scopes",
            field="scopes",
        )
    replaces = ""
    if "replaces" in data:
        if generation != 3:
            raise BadRequest("only a Nylas v3 tenant can replace another tenant", field="replaces")
        replaces = _text(data, "replaces", "", TENANT_PATTERN, MAX_TENANT, "the slug of the tenant it replaces")
        if replaces == tenant:
            raise BadRequest("a tenant cannot replace itself", field="replaces")

    lifetime = (
        _days(data, "secretLifetimeDays", LIFETIME_RANGE) if "secretLifetimeDays" in data else default_lifetime_days
    )
    if "rotateBeforeDays" in data:
        rotate_before = _days(data, "rotateBeforeDays", ROTATE_BEFORE_RANGE)
        if rotate_before >= lifetime:
            raise BadRequest("rotateBeforeDays must be shorter than secretLifetimeDays", field="rotateBeforeDays")
    else:
        # A short lifetime with the default window would be due at once: the default yields.
        rotate_before = min(default_rotate_before_days, max(1, lifetime // 2))
    existing = ""
    if "existingAppId" in data:
        existing = _text(data, "existingAppId", "", GUID_PATTERN, 36, "an application (client) id, a GUID").lower()
    branding = parse_branding(data["branding"]) if "branding" in data else None

    return ProvisionRequest(
        tenant=tenant,
        display_name=display_name,
        audience=audience,
        redirect_uri=redirect,
        auth_mode=mode,
        nylas=NylasSpec(target, region, app_id, credential, credential_secret),
        lifetime_days=lifetime,
        rotate_before_days=rotate_before,
        existing_app_id=existing,
        scopes=scopes,
        replaces=replaces,
        branding=branding,
    )


def _scopes(value: Any) -> tuple[str, ...]:
    """Graph delegated scope names from the table (graph_scopes.py); offline_access, openid and
    profile are always added. Refuses unknown names, repeats, and more than Entra allows per API."""
    if not isinstance(value, list) or not value:
        raise BadRequest("scopes must be a non-empty array of Microsoft Graph scope names", field="scopes")
    seen: list[str] = []
    for i, item in enumerate(value):
        where = f"scopes[{i}]"
        if not isinstance(item, str) or not item or len(item) > MAX_SCOPE_NAME:
            raise BadRequest(f"{where} must be a Microsoft Graph scope name such as Mail.Read", field=where)
        name = canonical(item)
        if name is None:
            raise BadRequest(
                f"{where} is not a Microsoft Graph delegated scope this service knows "
                "(see docs/nylas-targets.md for the list)",
                field=where,
            )
        if name in seen:
            raise BadRequest(f"{where} repeats {name}", field=where)
        seen.append(name)
    names = tuple(seen) + tuple(s for s in ALWAYS if s not in seen)
    if len(names) > MAX_PERMISSIONS_PER_API:
        raise BadRequest(
            f"scopes asks for {len(names)} Microsoft Graph permissions; Entra allows at most "
            f"{MAX_PERMISSIONS_PER_API} per API",
            field="scopes",
        )
    return names


def parse_branding(value: Any, where: str = "branding") -> Branding:
    """``branding``: https URLs for Graph's informationalUrl fields, and a logo as base64. Everything about the
    logo (type, first bytes, size) is checked here, before any outside call."""
    obj = _object(value, where)
    _fields(obj, f"{where}.", frozenset(), BRANDING_FIELDS)
    if not obj:
        raise BadRequest(f"{where} must name at least one of {sorted(BRANDING_FIELDS)}", field=where)
    urls: dict[str, str] = {}
    for key in BRANDING_URL_FIELDS:
        if key in obj:
            urls[key] = _text(
                obj, key, f"{where}.", INFO_URL_PATTERN, MAX_INFO_URL, "an https URL (https://host[:port][/path])"
            )
    logo = _logo(obj["logo"], f"{where}.logo") if "logo" in obj else None
    return Branding(
        marketing_url=urls.get("marketingUrl"),
        privacy_statement_url=urls.get("privacyStatementUrl"),
        support_url=urls.get("supportUrl"),
        terms_of_service_url=urls.get("termsOfServiceUrl"),
        logo=logo,
    )


def parse_branding_update(data: Any) -> Branding:
    """The body of PATCH /api/tenants/{tenant}: ``{"branding": {...}}`` and nothing else."""
    data = _object(data, "body")
    _fields(data, "", frozenset({"branding"}), frozenset())
    return parse_branding(data["branding"])


def logo_from_file(data: bytes, where: str = "--logo") -> Logo:
    """A logo read from a file (the CLI): its type is told by its first bytes."""
    content_type = next((t for t, magic in LOGO_TYPES.items() if data.startswith(magic)), "")
    if not content_type:
        raise BadRequest(f"{where} must be a PNG, JPEG or BMP image", field=where)
    return _checked_logo(content_type, data, where)


def _logo(value: Any, where: str) -> Logo:
    obj = _object(value, where)
    _fields(obj, f"{where}.", LOGO_FIELDS, frozenset())
    content_type = _choice(obj, "contentType", f"{where}.", tuple(LOGO_TYPES))
    raw = obj["base64"]
    path = f"{where}.base64"
    if not isinstance(raw, str):
        raise BadRequest(f"{path} must be a string", field=path)
    if len(raw) > 4 * ((MAX_LOGO_BYTES + 2) // 3):
        raise BadRequest(f"{path} is larger than {MAX_LOGO_BYTES // 1024} KB once decoded", field=path)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{path} must be standard base64 (A-Z, a-z, 0-9, +, / and = padding)", field=path) from None
    return _checked_logo(content_type, data, path)


def _checked_logo(content_type: str, data: bytes, where: str) -> Logo:
    if not data:
        raise BadRequest(f"{where} is empty", field=where)
    if len(data) > MAX_LOGO_BYTES:
        raise BadRequest(
            f"{where} is larger than {MAX_LOGO_BYTES // 1024} KB (the app registration portal's limit for a logo)",
            field=where,
        )
    if not any(data.startswith(magic) for magic in LOGO_TYPES[content_type]):
        raise BadRequest(
            f"{where} is not a {LOGO_TYPE_NAMES[content_type]} image (its first bytes say otherwise)", field=where
        )
    return Logo(content_type, data)
