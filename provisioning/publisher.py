"""The verified publisher of a tenant's app: set (a Partner One / MPN id) or unset, by a person.

Microsoft Graph allows ``POST /applications/{id}/setVerifiedPublisher`` and ``unsetVerifiedPublisher`` only
with the **delegated** permission ``Application.ReadWrite.All`` (a signed-in work or school account);
application permissions are not supported (learn.microsoft.com/graph/api/application-setverifiedpublisher).
The user must also hold Application Administrator, Cloud Application Administrator or Global Administrator
in Entra, and a Partner Center role on the MPN account
(learn.microsoft.com/entra/identity-platform/publisher-verification-overview#requirements).

So this runs with the operator's own sign-in (``--credential azure-cli``) and refuses, before any call, to
run as the service: by the kind of credential (the managed identity, or the local client secret), or, for
a sign-in whose token says it is an application (``az login --service-principal``), by the token's claims
(``idtyp`` "app", or ``roles`` without ``scp``), read without verifying them: they only pick the message,
Graph checks the token.

Idempotent: the app is read first (one GET), and a publisher already as asked is not written again.

No tenant lease: this is an operator action on one property that nothing else of ours writes, Graph takes it
only alone ("no other properties may be modified" with it), and an operator signed in as themselves may have
no right to the service's storage. The tenant's record is read from Key Vault (as ``status TENANT`` does).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from core.clock import to_utc
from core.errors import BadRequest, DependencyRejected, TenantNotFound
from core.ports import GraphApps, SecretStore, VerifiedPublisher
from core.record import TenantRecord, secret_name

DELEGATED_PERMISSION = "Application.ReadWrite.All"
ENTRA_ROLES = ("Application Administrator", "Cloud Application Administrator", "Global Administrator")
PARTNER_CENTER_ROLES = ("CPP Partner Admin", "Account Admin", "Global Administrator")
# The service's own identities: both get application tokens, which Graph refuses here.
SERVICE_CREDENTIALS = {
    "managed-identity": "the service's managed identity",
    "client-secret": "the service's client secret (AZURE_CLIENT_SECRET)",
}
# A Partner One (formerly MPN) id: digits (Partner Center's PartnerGlobal id).
MPN_ID = re.compile(r"[0-9]{1,16}")
GUIDE = "docs/going-to-production.md"
_DOMAIN_CODES = {"NoPublisherDomainOnApplication", "PublisherDomainMismatch", "PublisherDomainIsNotDNSVerified"}


def _roles(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1]


def why_delegated() -> str:
    return (
        f"Microsoft Graph sets a verified publisher only for a signed-in person: the delegated permission "
        f"{DELEGATED_PERMISSION} (work or school account), held by a user with an Entra role {_roles(ENTRA_ROLES)}. "
        "Application permissions are not supported, whatever they are"
    )


@dataclass(frozen=True)
class Operator:
    """Who is signed in, as far as the token's claims say (unverified: Graph decides)."""

    name: str = ""  # upn / preferred_username; "" when the token is opaque
    scopes: tuple[str, ...] = ()


def token_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, decoded without verifying anything; None when the token is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def is_application_token(claims: dict[str, Any]) -> bool:
    """An app-only token: ``idtyp`` says so, or it carries ``roles`` and no ``scp`` (delegated scopes)."""
    if str(claims.get("idtyp", "")).lower() == "app":
        return True
    return not claims.get("scp") and bool(claims.get("roles"))


def signed_in_operator(credential_kind: str, token: str | None) -> Operator:
    """The person this command runs as; refuses (no outside call) the service's own identity or an app token.
    ``credential_kind``: "managed-identity", "client-secret" or "azure-cli"."""
    if credential_kind in SERVICE_CREDENTIALS:
        raise BadRequest(
            f"publisher refuses to run as {SERVICE_CREDENTIALS[credential_kind]}: {why_delegated()}, and the "
            "service's identity is an application. Sign in as yourself (az login) and add --credential azure-cli. "
            "Nothing was changed.",
            field="--credential",
        )
    claims = token_claims(token) if token else None
    if claims is None:
        return Operator()  # an opaque token: Graph will say
    if is_application_token(claims):
        who = str(claims.get("app_displayname") or claims.get("appid") or "an application")
        raise BadRequest(
            f"publisher refuses your az sign-in: it holds an application token (of {who}; az login "
            f"--service-principal?), not a person's. {why_delegated()}. Sign in as yourself (az login) and run "
            "it again. Nothing was changed.",
            field="--credential",
        )
    name = str(claims.get("upn") or claims.get("preferred_username") or claims.get("unique_name") or "")
    return Operator(name, tuple(str(claims.get("scp", "")).split()))


@dataclass(frozen=True)
class PublisherResult:
    tenant: str
    client_id: str
    app_object_id: str
    action: str  # "set" | "unset"
    changed: bool  # False: it already was as asked, nothing was written
    publisher: VerifiedPublisher  # as it is now
    operator: str = ""

    def to_json(self) -> dict[str, object]:
        vp = self.publisher
        return {
            "tenant": self.tenant,
            "clientId": self.client_id,
            "appObjectId": self.app_object_id,
            "action": self.action,
            "changed": self.changed,
            "verifiedPublisher": (
                {
                    "id": vp.publisher_id,
                    "displayName": vp.display_name,
                    "addedDateTime": to_utc(vp.added).isoformat() if vp.added else None,
                }
                if vp.publisher_id
                else None
            ),
            "signedInAs": self.operator or None,
        }


class Publisher:
    def __init__(self, vault: SecretStore, graph: GraphApps, prefix: str) -> None:
        self.vault = vault
        self.graph = graph
        self.prefix = prefix

    def set(self, tenant: str, mpn_id: str, operator: Operator) -> PublisherResult:
        if not MPN_ID.fullmatch(mpn_id):
            raise BadRequest(
                "--mpn-id must be your Partner One (MPN) id, digits only (Partner Center > Account settings > "
                "Identifiers, type PartnerGlobal)",
                field="--mpn-id",
            )
        record = self._record(tenant)
        before = self.graph.profile(record.app_object_id).verified_publisher
        if before.publisher_id == mpn_id:
            return PublisherResult(tenant, record.client_id, record.app_object_id, "set", False, before, operator.name)
        self._call("set", record, lambda: self.graph.set_verified_publisher(record.app_object_id, mpn_id), mpn_id)
        after = self.graph.profile(record.app_object_id).verified_publisher
        return PublisherResult(tenant, record.client_id, record.app_object_id, "set", True, after, operator.name)

    def unset(self, tenant: str, operator: Operator) -> PublisherResult:
        record = self._record(tenant)
        before = self.graph.profile(record.app_object_id).verified_publisher
        if not before.publisher_id:
            return PublisherResult(
                tenant, record.client_id, record.app_object_id, "unset", False, before, operator.name
            )
        self._call("unset", record, lambda: self.graph.unset_verified_publisher(record.app_object_id), "")
        after = self.graph.profile(record.app_object_id).verified_publisher
        return PublisherResult(tenant, record.client_id, record.app_object_id, "unset", True, after, operator.name)

    def _record(self, tenant: str) -> TenantRecord:
        latest = self.vault.get(secret_name(self.prefix, tenant))
        record = TenantRecord.from_tags(latest.tags) if latest else None
        if record is None:
            raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
        return record

    def _call(self, action: str, record: TenantRecord, write: Any, mpn_id: str) -> None:
        try:
            write()
        except DependencyRejected as exc:
            raise _explained(exc, action, record, mpn_id) from None


def _explained(exc: DependencyRejected, action: str, record: TenantRecord, mpn_id: str) -> DependencyRejected:
    """Graph's refusal of set/unsetVerifiedPublisher, as a sentence that says what to do."""
    code = exc.error_code or ""
    app = f"app {record.client_id} (tenant {record.tenant})"
    if exc.status == 403:
        text = (
            f"Microsoft Graph refused to {action} the verified publisher of {app} ({exc.status} {code}): your "
            f"sign-in lacks what it takes. It needs the delegated permission {DELEGATED_PERMISSION} and an Entra "
            f"role {_roles(ENTRA_ROLES)} (ask an administrator to assign one, then az login again); setting a "
            f"publisher also needs a Partner Center role {_roles(PARTNER_CENTER_ROLES)} on the MPN account. "
            "Nothing was changed"
        )
    elif code in _DOMAIN_CODES:
        text = (
            f"Microsoft Graph refused to set the verified publisher of {app} ({code}): the app's publisher domain "
            "must be a verified domain of your directory (not *.onmicrosoft.com) that matches the domain of the "
            "email used to verify your Partner Center account. Verify the domain and set it as the app's "
            f"publisher domain in the Entra portal (a step the service cannot do): {GUIDE}#publisher-domain"
        )
    elif code.startswith("MPN") or code == "NoPublisherIdOnAssociatedMPNAccount":
        text = (
            f"Microsoft Graph refused MPN id {mpn_id} for {app} ({code}): use your Partner One id of type "
            "PartnerGlobal, from a vetted Partner Center account that this directory is associated with, and sign "
            f"in as a user with a Partner Center role {_roles(PARTNER_CENTER_ROLES)}: {GUIDE}#partner-one-id"
        )
    elif code == "InteractionRequired":
        text = (
            f"Microsoft Graph wants multifactor authentication for {action}ting a verified publisher: sign in again "
            "with MFA (az login), then run the command again"
        )
    else:
        return exc
    return DependencyRejected(exc.dependency, text, status=exc.status, error_code=code)
