"""The one settings object, read once from the environment.

Every name here is documented in ``local.settings.sample.json`` and the README,
and set by ``infra/``; tests keep them in step (tests/infra for the Bicep,
tests/test_cli.py for the README table, tests/test_settings.py for the sample). Production and local runs differ only in these values, never in code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


# name -> (default, description). Defaults are production defaults; None means required.
SETTINGS: dict[str, tuple[str | None, str]] = {
    "AZURE_TENANT_ID": (None, "Entra directory (tenant id) that holds the Nylas app registrations"),
    "AZURE_CLIENT_ID": ("", "Client id of the service's identity (user-assigned managed identity, or an app locally)"),
    "AZURE_CLIENT_SECRET": (
        "",
        "Local runs only: a client secret for the service's own identity; empty uses managed identity",
    ),
    "AZURE_AUTHORITY_HOST": ("https://login.microsoftonline.com", "Entra authority host"),
    "GRAPH_BASE_URL": ("https://graph.microsoft.com/v1.0", "Microsoft Graph base URL"),
    "KEY_VAULT_URL": (None, "Key Vault that is the source of truth, e.g. https://kv-name.vault.azure.net/"),
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": (
        "true",
        "Check the Key Vault challenge resource; false only for local emulators",
    ),
    "CA_BUNDLE": ("", "Local runs only: PEM bundle to trust (the emulators' CA); empty uses the system store"),
    "SECRET_PREFIX": ("nylas-entra-", "Prefix of the Key Vault secret names this service owns"),
    "PERMISSION_MANIFEST_PATH": (
        "",
        "JSON file with requiredResourceAccess; empty uses the Nylas v2 sample shipped in the repo",
    ),
    "DEFAULT_SECRET_LIFETIME_DAYS": ("730", "Lifetime of a new client secret when a tenant does not say"),
    "DEFAULT_ROTATE_BEFORE_DAYS": ("30", "Rotate this many days before expiry when a tenant does not say"),
    "ROTATION_SCHEDULE": ("0 0 2 * * *", "NCRONTAB schedule of the nightly scan (UTC)"),
    "ROTATION_WINDOW": (
        "",
        "When unattended rotations may start (UTC), e.g. Mon-Fri 02:00-04:00: the scan spreads due tenants over it; "
        "empty: whenever the scan runs",
    ),
    "ROTATION_QUEUE": ("rotation-requests", "Storage queue of rotation requests"),
    "LEASE_CONTAINER": ("rotation-leases", "Blob container holding one lease blob per tenant"),
    "LEASE_SECONDS": ("30", "Blob lease duration (15-60); renewed while a rotation runs"),
    "VERIFY_BUDGET_SECONDS": ("300", "How long to retry a new secret through Entra's propagation delay"),
    "STUCK_AFTER_HOURS": ("6", "A rotation in a non-final state longer than this is queued again by the scan"),
    "ORPHAN_GRACE_MINUTES": ("60", "cleanup removes an unrecorded credential of ours only when older than this"),
    "MANUAL_ESCALATE_DAYS": ("7", "Escalate a manual confirmation when the old secret has fewer days left"),
    "ALERT_WEBHOOK_URL": ("", "Where alerts go; empty logs them only"),
    "ALERT_WEBHOOK_KIND": ("generic", "generic, teams or slack"),
    "NYLAS_V3_API_US": ("https://api.us.nylas.com", "Nylas v3 API, US region"),
    "NYLAS_V3_API_EU": ("https://api.eu.nylas.com", "Nylas v3 API, EU region"),
    "NYLAS_V2_API_US": ("https://beta.us.nylas.com", "Nylas v2 Integrations API, US region"),
    "NYLAS_V2_API_EU": ("https://beta.eu.nylas.com", "Nylas v2 Integrations API, EU region"),
    "GRAPH_WRITES_PER_MINUTE": (
        "55",
        "Pace of Graph writes to apps that sign in personal accounts (Graph allows 60 a minute): "
        "the nightly fan-out spaces their rotations by this",
    ),
    "HTTP_TIMEOUT_SECONDS": ("30", "Timeout of one outside call"),
    "HTTP_MAX_RETRIES": ("3", "Retries of one outside call on 429/5xx/network errors"),
    "HTTP_RETRY_BASE_SECONDS": ("1", "Base delay of those retries (exponential backoff; Retry-After wins when sent)"),
    "STORAGE_CONNECTION": (
        "AzureWebJobsStorage",
        "Prefix of the storage connection settings (same as the Functions host)",
    ),
    # Caller sign-in (blueprints/caller_auth.py).
    "CALLER_AUTH": (
        "entra",
        "How callers of the HTTP API sign in: entra (Entra ID access tokens with app roles) or function-key (the Functions host's keys only)",
    ),
    "CALLER_AUTH_AUDIENCE": (
        "",
        "With CALLER_AUTH=entra, required: the API app registration's client id and/or Application ID URI (api://...), comma-separated; a token's aud must be one",
    ),
    "CALLER_AUTH_TENANT_ID": ("", "Directory whose access tokens the HTTP API accepts; empty uses AZURE_TENANT_ID"),
}


REGIONS = ("us", "eu")
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
KNOWN_AUTHORITIES = {
    "https://login.microsoftonline.com",
    "https://login.microsoftonline.us",
    "https://login.chinacloudapi.cn",
}


def _caller_auth_settings(get: Callable[[str], str], env: Mapping[str, str]) -> dict[str, Any]:
    explicit = env.get("CALLER_AUTH", "").strip() != ""
    mode = _caller_auth_mode("CALLER_AUTH", get("CALLER_AUTH"))
    audiences = _audiences("CALLER_AUTH_AUDIENCE", get("CALLER_AUTH_AUDIENCE"))
    if explicit and mode == "entra" and not audiences:
        raise SettingsError(
            f"setting CALLER_AUTH_AUDIENCE is required when CALLER_AUTH is entra: {SETTINGS['CALLER_AUTH_AUDIENCE'][1]}"
        )
    own = get("CALLER_AUTH_TENANT_ID")
    directory = _directory("CALLER_AUTH_TENANT_ID", own) if own else get("AZURE_TENANT_ID")
    return {"caller_auth": mode, "caller_auth_audiences": audiences, "caller_auth_tenant_id": directory}


def _url(name: str, raw: str, *, optional: bool = False) -> str:
    """An https URL, or (``optional``) empty. An unresolved Key Vault reference (the app setting's
    literal ``@Microsoft.KeyVault(...)`` text, when the platform could not read the secret) is named
    as such: left as it is, every alert would be lost quietly."""
    value = raw.strip()
    if optional and not value:
        return ""
    if value.startswith("@Microsoft.KeyVault("):
        raise SettingsError(
            f"{name} is an unresolved Key Vault reference: the Functions host could not read the secret "
            "(check the app's identity has Key Vault Secrets User, and the reference's URI)"
        )
    parsed = urlsplit(value)
    loopback = parsed.scheme == "http" and parsed.hostname in LOOPBACK  # local runs only
    if not (parsed.scheme == "https" or loopback) or not parsed.hostname or any(c.isspace() for c in value):
        raise SettingsError(f"{name} must be an https URL (http only on loopback), got {value[:80]!r}")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes"}:
        return True
    if lowered in {"0", "false", "no"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _float(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WINDOW = re.compile(
    r"(?:(?P<days>.*?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})(?:\s*UTC)?", re.IGNORECASE
)
WINDOW_EXAMPLE = "e.g. 'Mon-Fri 02:00-04:00', 'Mon,Wed,Sat 22:00-02:00' or 'daily 01:00-03:00' (UTC)"


def window_parts(name: str, raw: str) -> tuple[frozenset[int], int, int] | None:
    """A rotation window's grammar: ``[DAYS] HH:MM-HH:MM`` in UTC, or empty (no window: None).

    DAYS is ``*`` or ``daily`` (the default), or a comma list of days (``Mon``..``Sun`` or full
    names, any case) and ranges (``Mon-Fri``; ``Fri-Mon`` wraps); a window opens on those days.
    An end at or before the start crosses midnight (``22:00-02:00`` runs into the next day);
    ``24:00`` may end one. Returns (weekdays with Monday 0, start and end in minutes after
    midnight); ``rotation.windows.parse`` makes a ``Window`` of them. Here (not in rotation/) so
    that settings are checked when they are read."""
    text = " ".join(raw.split())
    if not text:
        return None
    matched = _WINDOW.fullmatch(text)
    if not matched:
        raise SettingsError(f"{name} must be [DAYS] HH:MM-HH:MM, {WINDOW_EXAMPLE}; got {raw!r}")
    days = _window_days(name, (matched["days"] or "").strip(), raw)
    start = _time_of_day(name, matched["start"], raw, end=False)
    end = _time_of_day(name, matched["end"], raw, end=True)
    if start == end:
        raise SettingsError(
            f"{name} opens and closes at {matched['start']}, an empty window (00:00-24:00 is the whole day); got {raw!r}"
        )
    return days, start, end


def _window_days(name: str, text: str, raw: str) -> frozenset[int]:
    if text.lower() in {"", "*", "daily"}:
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.split(","):
        first, sep, last = (part.strip() for part in item.partition("-"))
        a = _weekday(name, first, raw)
        b = _weekday(name, last, raw) if sep else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _weekday(name: str, text: str, raw: str) -> int:
    lowered = text.lower()
    for names in (WEEKDAYS, _WEEKDAY_NAMES):
        if lowered in names:
            return names.index(lowered)
    raise SettingsError(
        f"{name}: {text!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun, a range such as Mon-Fri, "
        f"a list such as Mon,Wed,Sat, or * / daily alone); got {raw!r}"
    )


def _time_of_day(name: str, text: str, raw: str, *, end: bool) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if (hours < 24 and minutes < 60) or (end and (hours, minutes) == (24, 0)):
        return hours * 60 + minutes
    allowed = "00:00-23:59, or 24:00 as an end" if end else "00:00-23:59"
    raise SettingsError(f"{name}: {text} is not a time of day ({allowed}); got {raw!r}")


def _window(name: str, raw: str) -> str:
    window_parts(name, raw)
    return " ".join(raw.split())


CALLER_AUTH_MODES = ("entra", "function-key")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_MULTI_TENANT = {"common", "organizations", "consumers"}


def _caller_auth_mode(name: str, raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in CALLER_AUTH_MODES:
        raise SettingsError(f"{name} must be entra or function-key, got {raw[:40]!r}")
    return mode


def _audiences(name: str, raw: str) -> tuple[str, ...]:
    """Client ids (GUIDs) and Application ID URIs (``api://...``, or ``https://`` on a verified domain)."""
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in items:
        parsed = urlsplit(item)
        uri = parsed.scheme in {"api", "https"} and bool(parsed.netloc) and not any(c.isspace() for c in item)
        if not (_GUID.fullmatch(item) or uri):
            raise SettingsError(
                f"{name} must list the API registration's client id (a GUID) and/or its Application ID URI "
                f"(api://...), comma-separated; got {item[:80]!r}"
            )
    return items


def _directory(name: str, raw: str) -> str:
    """One directory: a tenant id or a verified domain. A multi-tenant authority would let tokens of
    any organisation in."""
    value = raw.strip()
    if value.lower() in _MULTI_TENANT:
        raise SettingsError(
            f"{name} must name one directory (a tenant id), not {value!r}: that accepts any organisation"
        )
    if not (_GUID.fullmatch(value) or _DOMAIN.fullmatch(value)):
        raise SettingsError(f"{name} must be a tenant id (GUID) or a verified domain, got {value[:80]!r}")
    return value


@dataclass(frozen=True)
class StorageSettings:
    """Where leases and the queue live: a connection string (Azurite) or identity-based URIs."""

    connection_string: str = ""
    blob_service_uri: str = ""
    queue_service_uri: str = ""

    @classmethod
    def from_env(cls, prefix: str, env: Mapping[str, str]) -> StorageSettings:
        conn = env.get(prefix, "")
        if conn:
            return cls(connection_string=conn)
        account = env.get(f"{prefix}__accountName", "")
        blob = env.get(f"{prefix}__blobServiceUri", "") or (account and f"https://{account}.blob.core.windows.net")
        queue = env.get(f"{prefix}__queueServiceUri", "") or (account and f"https://{account}.queue.core.windows.net")
        return cls(blob_service_uri=blob, queue_service_uri=queue)

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or (self.blob_service_uri and self.queue_service_uri))


@dataclass(frozen=True)
class Settings:
    tenant_id: str
    key_vault_url: str
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    authority_host: str = "https://login.microsoftonline.com"
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    verify_challenge_resource: bool = True
    ca_bundle: str = ""
    secret_prefix: str = "nylas-entra-"
    permission_manifest_path: str = ""
    default_lifetime_days: int = 730
    default_rotate_before_days: int = 30
    rotation_schedule: str = "0 0 2 * * *"
    rotation_window: str = ""  # checked by window_parts; rotation.windows holds the logic
    rotation_queue: str = "rotation-requests"
    lease_container: str = "rotation-leases"
    lease_seconds: int = 30
    verify_budget_seconds: int = 300
    stuck_after_hours: int = 6
    orphan_grace_minutes: int = 60
    manual_escalate_days: int = 7
    alert_webhook_url: str = field(default="", repr=False)
    alert_webhook_kind: str = "generic"
    nylas_v3_api: Mapping[str, str] = field(
        default_factory=lambda: {"us": "https://api.us.nylas.com", "eu": "https://api.eu.nylas.com"}
    )
    nylas_v2_api: Mapping[str, str] = field(
        default_factory=lambda: {"us": "https://beta.us.nylas.com", "eu": "https://beta.eu.nylas.com"}
    )
    graph_writes_per_minute: int = 55
    http_timeout_seconds: int = 30
    http_max_retries: int = 3
    http_retry_base_seconds: float = 1.0
    storage: StorageSettings = field(default_factory=StorageSettings)
    # Caller sign-in: entra (access tokens, app roles; blueprints/caller_auth.py) or function-key.
    caller_auth: str = "entra"
    caller_auth_audiences: tuple[str, ...] = ()
    caller_auth_tenant_id: str = ""  # from_env puts AZURE_TENANT_ID here when CALLER_AUTH_TENANT_ID is empty

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str:
            default, _ = SETTINGS[name]
            value = env.get(name, "").strip()
            if value:
                return value
            if default is None:
                raise SettingsError(f"setting {name} is required: {SETTINGS[name][1]}")
            return default

        kind = get("ALERT_WEBHOOK_KIND").lower()
        if kind not in {"generic", "teams", "slack"}:
            raise SettingsError(f"ALERT_WEBHOOK_KIND must be generic, teams or slack, got {kind!r}")
        vault = _url("KEY_VAULT_URL", get("KEY_VAULT_URL"))
        return cls(
            tenant_id=get("AZURE_TENANT_ID"),
            client_id=get("AZURE_CLIENT_ID"),
            client_secret=get("AZURE_CLIENT_SECRET"),
            authority_host=_url("AZURE_AUTHORITY_HOST", get("AZURE_AUTHORITY_HOST")).rstrip("/"),
            graph_base_url=_url("GRAPH_BASE_URL", get("GRAPH_BASE_URL")).rstrip("/"),
            key_vault_url=vault,
            verify_challenge_resource=_bool(
                "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", get("KEY_VAULT_VERIFY_CHALLENGE_RESOURCE")
            ),
            ca_bundle=get("CA_BUNDLE"),
            secret_prefix=get("SECRET_PREFIX"),
            permission_manifest_path=get("PERMISSION_MANIFEST_PATH"),
            default_lifetime_days=_int("DEFAULT_SECRET_LIFETIME_DAYS", get("DEFAULT_SECRET_LIFETIME_DAYS"), 2, 730),
            default_rotate_before_days=_int("DEFAULT_ROTATE_BEFORE_DAYS", get("DEFAULT_ROTATE_BEFORE_DAYS"), 1, 365),
            rotation_schedule=get("ROTATION_SCHEDULE"),
            rotation_window=_window("ROTATION_WINDOW", get("ROTATION_WINDOW")),
            rotation_queue=get("ROTATION_QUEUE"),
            lease_container=get("LEASE_CONTAINER"),
            lease_seconds=_int("LEASE_SECONDS", get("LEASE_SECONDS"), 15, 60),
            verify_budget_seconds=_int("VERIFY_BUDGET_SECONDS", get("VERIFY_BUDGET_SECONDS"), 0, 3600),
            stuck_after_hours=_int("STUCK_AFTER_HOURS", get("STUCK_AFTER_HOURS"), 1, 720),
            orphan_grace_minutes=_int("ORPHAN_GRACE_MINUTES", get("ORPHAN_GRACE_MINUTES"), 0, 100_000),
            manual_escalate_days=_int("MANUAL_ESCALATE_DAYS", get("MANUAL_ESCALATE_DAYS"), 1, 365),
            alert_webhook_url=_url("ALERT_WEBHOOK_URL", get("ALERT_WEBHOOK_URL"), optional=True),
            alert_webhook_kind=kind,
            nylas_v3_api={
                r: _url(f"NYLAS_V3_API_{r.upper()}", get(f"NYLAS_V3_API_{r.upper()}")).rstrip("/") for r in REGIONS
            },
            nylas_v2_api={
                r: _url(f"NYLAS_V2_API_{r.upper()}", get(f"NYLAS_V2_API_{r.upper()}")).rstrip("/") for r in REGIONS
            },
            graph_writes_per_minute=_int("GRAPH_WRITES_PER_MINUTE", get("GRAPH_WRITES_PER_MINUTE"), 1, 100_000),
            http_timeout_seconds=_int("HTTP_TIMEOUT_SECONDS", get("HTTP_TIMEOUT_SECONDS"), 1, 600),
            http_max_retries=_int("HTTP_MAX_RETRIES", get("HTTP_MAX_RETRIES"), 0, 10),
            http_retry_base_seconds=_float("HTTP_RETRY_BASE_SECONDS", get("HTTP_RETRY_BASE_SECONDS"), 0.0, 30.0),
            storage=StorageSettings.from_env(get("STORAGE_CONNECTION"), env),
            **_caller_auth_settings(get, env),
        )

    def require_caller_auth(self) -> None:
        """With CALLER_AUTH=entra the API's audience must be known. from_env checks it when
        CALLER_AUTH is set to entra explicitly (as in Azure); left unset (the default, entra), the
        HTTP API calls this on each request and answers 503 naming the setting, failing closed,
        while timers, queues and tools that never serve HTTP need not set it."""
        if self.caller_auth == "entra" and not self.caller_auth_audiences:
            raise SettingsError(
                f"setting CALLER_AUTH_AUDIENCE is required when CALLER_AUTH is entra: {SETTINGS['CALLER_AUTH_AUDIENCE'][1]}"
            )

    @property
    def known_authority(self) -> bool:
        """A public cloud authority: MSAL's instance discovery can vouch for it. Anything else
        (the local emulator, a sovereign cloud set by hand) must skip discovery."""
        return self.authority_host.rstrip("/").lower() in KNOWN_AUTHORITIES

    def describe(self) -> dict[str, object]:
        """Settings safe to print: secrets are reduced to whether they are set."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in {"client_secret", "alert_webhook_url"}:
                value = "(set)" if value else "(empty)"
            elif f.name == "storage":
                value = "(connection string)" if value.connection_string else value.blob_service_uri or "(unset)"
            out[f.name] = value
        return out
