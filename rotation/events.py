"""Key Vault events from Event Grid, in either schema, reduced to what we act on.

Delivery is at least once, late, duplicated and out of order, so parsing is
lenient (keys in any case, whitespace trimmed, NBF/EXP as number or string,
the secret name and version from ``data.Id`` or ``subject`` when ``data`` lacks
them) and the decision to act compares the event's version with the latest one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from core.errors import BadRequest

NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
HANDLED = (NEAR_EXPIRY, EXPIRED)
_CANONICAL = {t.lower(): t for t in HANDLED}


@dataclass(frozen=True)
class KeyVaultEvent:
    event_type: str
    secret_name: str
    version: str
    vault_name: str
    expires_on: datetime | None
    not_before: datetime | None


def _timestamp(value: object) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _from_id(secret_id: str) -> tuple[str, str]:
    """(name, version) from ``https://{vault}/secrets/{name}[/{version}]`` (or a bare
    ``secrets/{name}[/{version}]`` path); empty strings when it is not that shape."""
    path = urlsplit(secret_id).path if "://" in secret_id else secret_id
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "secrets":
            return parts[i + 1], parts[i + 2] if len(parts) > i + 2 else ""
    return "", ""


def parse_event(event_type: str, subject: str | None, data: object) -> KeyVaultEvent:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise BadRequest("event data is not an object", field="data")
    fields = {str(k).strip().lower(): v for k, v in data.items()}

    def text(key: str) -> str:
        value = fields.get(key)
        return str(value).strip() if value is not None else ""

    id_name, id_version = _from_id(text("id"))
    subject = (subject or "").strip()
    subject_name, _ = _from_id(subject)
    name = text("objectname") or id_name or subject_name or subject.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise BadRequest("event names no secret (data.ObjectName and subject are empty)", field="data.ObjectName")
    kind = event_type.strip()
    return KeyVaultEvent(
        event_type=_CANONICAL.get(kind.lower(), kind),
        secret_name=name,
        version=text("version") or id_version,
        vault_name=text("vaultname"),
        expires_on=_timestamp(fields.get("exp")),
        not_before=_timestamp(fields.get("nbf")),
    )
