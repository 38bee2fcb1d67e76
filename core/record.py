"""The tenant record: what Key Vault version tags say about a tenant.

Key Vault is the only database. Each version of a tenant's secret carries the
whole record in its tags (tags belong to a version, so every write copies them),
and the latest version is the record. Key Vault allows 15 tags of at most 256
characters (world-facts §7): see ``TAG_NAMES``.

Two layouts exist. Layout 1 (the first release) kept the Nylas target, region and
app id, and the lifetime and window, in five tags of their own. Layout 2 packs them
into ``nylas`` (``<target>/<region>/<app-id>``) and ``policy`` (``<lifetime>/<window>``),
which frees room for the v3 connector credential id and the tenant a v3 tenant
replaces. ``from_tags`` reads both layouts (the tag ``nylas`` tells them apart);
``to_tags`` writes layout 2 only, so a tenant moves to it on its next write.
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
    RETIRING = "retiring"  # a retirement began: nothing rotates it again; DELETE resumes it

    @property
    def settled(self) -> bool:
        return self in (RotationState.CURRENT, RotationState.RESTORED)


class NylasTarget(StrEnum):
    """Where Nylas keeps a tenant's Microsoft client id and secret (docs/nylas-targets.md)."""

    V3_CREDENTIAL = "v3-credential"  # its own connector credential, picked at sign-in by credential_id
    V3_CONNECTOR = "v3-connector"  # the Microsoft connector's own settings: one tenant per Nylas app
    V2_INTEGRATION = "v2-integration"  # the v2-era Integrations API
    MANUAL = "manual"  # a person pastes it in the v2 dashboard and confirms

    @property
    def generation(self) -> int:
        """Nylas API generation: a v3 app registration differs from a v2 one (callback, scopes, audience)."""
        return 3 if self.value.startswith("v3-") else 2


class Audience(StrEnum):
    """Who may sign in to a tenant's app: Entra's signInAudience, in our words."""

    SINGLE_ORG = "single-org"  # AzureADMyOrg: our own directory only
    MULTI_ORG = "multi-org"  # AzureADMultipleOrgs: work or school accounts of any organization
    ANY_ORG_AND_PERSONAL = "any-org-and-personal"  # AzureADandPersonalMicrosoftAccount (Nylas v3's default)

    @property
    def sign_in_audience(self) -> str:
        return _SIGN_IN_AUDIENCES[self]

    @property
    def allows_personal(self) -> bool:
        """Personal-account apps live under stricter Entra rules (world-facts §3, §4c): two client
        secrets at most, token version 2, 90-character names, 60 app writes a minute."""
        return self is Audience.ANY_ORG_AND_PERSONAL


_SIGN_IN_AUDIENCES = {
    Audience.SINGLE_ORG: "AzureADMyOrg",
    Audience.MULTI_ORG: "AzureADMultipleOrgs",
    Audience.ANY_ORG_AND_PERSONAL: "AzureADandPersonalMicrosoftAccount",
}

# Layout 2. Optional tags (credential id, replaces) are written only when set.
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
    "nylas",
    "nylas-credential",
    "nylas-credential-id",
    "policy",
    "replaces",
)
assert len(TAG_NAMES) <= 15
LEGACY_TAG_NAMES = ("nylas-target", "nylas-region", "nylas-app-id", "lifetime-days", "rotate-before-days")

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
    audience: str  # an Audience value: decides the tenant Nylas signs users in with
    nylas_target: NylasTarget
    nylas_region: str
    nylas_app_id: str
    nylas_credential: str  # name of the Key Vault secret holding the Nylas credential ("" for manual)
    lifetime_days: int
    rotate_before_days: int
    previous_key_id: str = ""
    rotation_id: str = ""
    nylas_credential_id: str = ""  # v3-credential: the connector credential's id at Nylas
    replaces: str = ""  # a v3 tenant that replaces a v2 one names it here until it is retired

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
            # "/" occurs in none of the three (a target, a region, a Nylas app id pattern).
            "nylas": f"{self.nylas_target.value}/{self.nylas_region}/{self.nylas_app_id}",
            "nylas-credential": self.nylas_credential,
            "policy": f"{self.lifetime_days}/{self.rotate_before_days}",
        }
        if self.nylas_credential_id:
            tags["nylas-credential-id"] = self.nylas_credential_id
        if self.replaces:
            tags["replaces"] = self.replaces
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str] | None) -> TenantRecord | None:
        """The record in a version's tags (either layout), or None when the secret is not a tenant of ours."""
        if not tags or tags.get(MARKER_TAG) != MARKER or "client-id" not in tags or "state" not in tags:
            return None
        try:
            if "nylas" in tags:
                target, region, app_id = tags["nylas"].split("/", 2)
                lifetime, window = tags.get("policy", "730/30").split("/", 1)
            else:  # layout 1
                target, region, app_id = (
                    tags["nylas-target"],
                    tags.get("nylas-region", "us"),
                    tags.get("nylas-app-id", ""),
                )
                lifetime, window = tags.get("lifetime-days", "730"), tags.get("rotate-before-days", "30")
            return cls(
                tenant=tags["tenant"],
                app_object_id=tags["app-object-id"],
                client_id=tags["client-id"],
                key_id=tags.get("key-id", ""),
                state=RotationState(tags["state"]),
                audience=Audience(tags.get("audience", "multi-org")).value,
                nylas_target=NylasTarget(target),
                nylas_region=region,
                nylas_app_id=app_id,
                nylas_credential=tags.get("nylas-credential", ""),
                lifetime_days=int(lifetime),
                rotate_before_days=int(window),
                previous_key_id=tags.get("previous-key-id", ""),
                rotation_id=tags.get("rotation-id", ""),
                nylas_credential_id=tags.get("nylas-credential-id", ""),
                replaces=tags.get("replaces", ""),
            )
        except (KeyError, ValueError):
            return None

    def moved_to(self, state: RotationState) -> TenantRecord:
        # When it moved is the version's updated_on attribute: no tag needed for it.
        return replace(self, state=state)

    def nylas_sign_in_tenant(self, home_tenant_id: str) -> str:
        """The Entra authority Nylas sends users to: work and personal accounts ("common"), any
        work account ("organizations"), or only our own directory."""
        return sign_in_tenant(Audience(self.audience), home_tenant_id)


def sign_in_tenant(audience: Audience, home_tenant_id: str) -> str:
    if audience is Audience.SINGLE_ORG:
        return home_tenant_id
    return "common" if audience.allows_personal else "organizations"
