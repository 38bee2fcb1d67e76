"""The tenant record: what Key Vault version tags say about a tenant.

Key Vault is the only database. Each version of a tenant's secret carries the
whole record in its tags (tags belong to a version, so every write copies them),
and the latest version is the record. Key Vault allows 15 tags of at most 256
characters: the record uses exactly 15, see ``TAG_NAMES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

MARKER_TAG = "managed-by"
MARKER = "nylas-entra-rotator"
# Graph password credentials we create carry this prefix in their displayName;
# a credential without it is never touched.
CREDENTIAL_PREFIX = "nylas-entra-rotator"


class RotationState(StrEnum):
    """Where a tenant's latest secret version stands. ``current`` is the only resting state."""

    PENDING = "pending"  # new credential created and stored, not yet proven
    VERIFIED = "verified"  # Entra accepts it; Nylas not yet updated
    AWAITING_CONFIRMATION = "awaiting-confirmation"  # manual target: an operator must paste it
    CURRENT = "current"  # pushed (or confirmed), previous credential revoked
    RESTORED = "restored"  # a failed rotation rolled back: this version holds the previous secret

    @property
    def settled(self) -> bool:
        return self in (RotationState.CURRENT, RotationState.RESTORED)


class NylasTarget(StrEnum):
    V3_CONNECTOR = "v3-connector"
    V2_INTEGRATION = "v2-integration"
    MANUAL = "manual"


TAG_NAMES = (
    MARKER_TAG,
    "tenant",
    "app-object-id",
    "client-id",
    "key-id",
    "state",
    "audience",
    "previous-key-id",
    "rotation-id",
    "nylas-target",
    "nylas-region",
    "nylas-app-id",
    "nylas-credential",
    "lifetime-days",
    "rotate-before-days",
)
assert len(TAG_NAMES) <= 15

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def secret_name(prefix: str, tenant: str) -> str:
    return f"{prefix}{tenant}"


def nylas_credential_secret_name(prefix: str, tenant: str) -> str:
    # "--" cannot occur in a slug, so this never collides with a tenant's own secret name.
    return f"{prefix}{tenant}--nylas"


@dataclass(frozen=True)
class TenantRecord:
    tenant: str
    app_object_id: str
    client_id: str
    key_id: str
    state: RotationState
    audience: str  # multi-org | single-org: decides the tenant Nylas signs users in with
    nylas_target: NylasTarget
    nylas_region: str
    nylas_app_id: str
    nylas_credential: str  # name of the Key Vault secret holding the Nylas credential ("" for manual)
    lifetime_days: int
    rotate_before_days: int
    previous_key_id: str = ""
    rotation_id: str = ""

    def to_tags(self) -> dict[str, str]:
        tags = {
            MARKER_TAG: MARKER,
            "tenant": self.tenant,
            "app-object-id": self.app_object_id,
            "client-id": self.client_id,
            "key-id": self.key_id,
            "state": self.state.value,
            "audience": self.audience,
            "previous-key-id": self.previous_key_id,
            "rotation-id": self.rotation_id,
            "nylas-target": self.nylas_target.value,
            "nylas-region": self.nylas_region,
            "nylas-app-id": self.nylas_app_id,
            "nylas-credential": self.nylas_credential,
            "lifetime-days": str(self.lifetime_days),
            "rotate-before-days": str(self.rotate_before_days),
        }
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str] | None) -> TenantRecord | None:
        """The record in a version's tags, or None when the secret is not a tenant of ours."""
        if not tags or tags.get(MARKER_TAG) != MARKER or "client-id" not in tags or "state" not in tags:
            return None
        try:
            return cls(
                tenant=tags["tenant"],
                app_object_id=tags["app-object-id"],
                client_id=tags["client-id"],
                key_id=tags.get("key-id", ""),
                state=RotationState(tags["state"]),
                audience=tags.get("audience", "multi-org"),
                nylas_target=NylasTarget(tags["nylas-target"]),
                nylas_region=tags.get("nylas-region", "us"),
                nylas_app_id=tags.get("nylas-app-id", ""),
                nylas_credential=tags.get("nylas-credential", ""),
                lifetime_days=int(tags.get("lifetime-days", "730")),
                rotate_before_days=int(tags.get("rotate-before-days", "30")),
                previous_key_id=tags.get("previous-key-id", ""),
                rotation_id=tags.get("rotation-id", ""),
            )
        except (KeyError, ValueError):
            return None

    def moved_to(self, state: RotationState) -> TenantRecord:
        # When it moved is the version's updated_on attribute: no tag needed for it.
        return replace(self, state=state)

    def nylas_sign_in_tenant(self, home_tenant_id: str) -> str:
        """The tenant Nylas sends users to: any work account, or only our own directory."""
        return home_tenant_id if self.audience == "single-org" else "organizations"
