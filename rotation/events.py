"""Key Vault events from Event Grid, in either schema, reduced to what we act on.

Delivery is at least once, late, duplicated and out of order, so parsing is
lenient (keys in any case, whitespace trimmed, NBF/EXP as number or string,
the secret name from ``subject`` when ``data`` lacks it) and the decision to act
compares the event's version with the latest one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import BadRequest

NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
HANDLED = (NEAR_EXPIRY, EXPIRED)


@dataclass(frozen=True)
class KeyVaultEvent:
    event_type: str
    secret_name: str
    version: str
    vault_name: str
    expires_on: datetime | None
    not_before: datetime | None


def _timestamp(value: object) -> datetime | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_event(event_type: str, subject: str | None, data: object) -> KeyVaultEvent:
    if not isinstance(data, Mapping):
        raise BadRequest("event data is not an object", field="data")
    fields = {str(k).strip().lower(): v for k, v in data.items()}

    def text(key: str) -> str:
        value = fields.get(key)
        return str(value).strip() if value is not None else ""

    name = text("objectname") or (subject or "").strip().rsplit("/", 1)[-1]
    if not name:
        raise BadRequest("event names no secret (data.ObjectName and subject are empty)", field="data.ObjectName")
    return KeyVaultEvent(
        event_type=event_type.strip(),
        secret_name=name,
        version=text("version"),
        vault_name=text("vaultname"),
        expires_on=_timestamp(fields.get("exp")),
        not_before=_timestamp(fields.get("nbf")),
    )
