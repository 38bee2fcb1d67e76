"""Is a tenant's app ready for production? A pure judgement from the app's Graph properties and the record.

What people of other organizations see when they consent to the app, and what stops them:

- **Verified publisher.** Nylas lists it as a prerequisite of a production Microsoft app. Without it the
  consent prompt says "unverified", organizations that allow user consent only to apps from verified
  publishers (Microsoft's recommended setting) leave their users no way but their admin, and risk-based
  step-up consent blocks users from consenting to multitenant apps registered after November 2020 that
  are not publisher verified (learn.microsoft.com/entra/identity-platform/publisher-verification-overview).
- **Publisher domain.** Publisher verification needs a publisher domain that is not ``*.onmicrosoft.com``;
  setting it (a verified domain of the directory) is a portal step the service cannot do.
- **Terms of service and privacy statement.** A multitenant app without both links shows an alert at
  consent (learn.microsoft.com/entra/identity-platform/howto-add-terms-of-service-privacy-statement).
- **Admin consent.** Some permissions always need an administrator: the v2 manifest's (``adminConsent``
  in provisioning/nylas_v2_manifest.json, Place.Read.All), any application permission (Role), and no
  delegated scope of the v3 table (provisioning/graph_scopes.py: mail, calendar, contacts, people,
  online meetings, User.Read and OpenID scopes are user-consentable in Microsoft's permissions reference).

``missing`` blocks production; ``advice`` does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.clock import to_utc
from core.ports import AppProfile, InfoUrls, VerifiedPublisher
from core.record import Audience, TenantRecord
from provisioning.graph_scopes import GRAPH_APP_ID, GRAPH_DELEGATED_SCOPES

UNVERIFIED_DOMAIN_SUFFIX = ".onmicrosoft.com"
# Delegated Microsoft Graph permissions this service may ask for that need an administrator's consent
# (Microsoft's permissions reference). Those of the v3 table need none.
ADMIN_ONLY_GRAPH_SCOPES = {"cb8f45a0-5c2e-4ea1-b803-84b870a7d7ec": "Place.Read.All"}
_GRAPH_SCOPE_NAMES = {guid: name for name, guid in GRAPH_DELEGATED_SCOPES.items()}


class UserConsent(StrEnum):
    """Whether users of other organizations can consent to the app themselves."""

    ADMIN_ONLY = "admin-only"  # a requested permission always needs an administrator
    VERIFIED_PUBLISHER = "allowed-where-verified-publishers-are"  # user consent where the org allows it
    RESTRICTED = "restricted"  # no verified publisher: many organizations leave it to their admin
    OWN_DIRECTORY = "own-directory"  # a single-organization app: only our own directory signs in


def admin_consent_url(authority_host: str, home_tenant_id: str, record: TenantRecord) -> str:
    """Where an administrator consents for their whole organization (the same URL provisioning answers)."""
    tenant = record.nylas_sign_in_tenant(home_tenant_id)
    return f"{authority_host.rstrip('/')}/{tenant}/adminconsent?client_id={record.client_id}"


@dataclass(frozen=True)
class Readiness:
    ready: bool
    missing: tuple[str, ...] = ()  # what stands between the app and production
    advice: tuple[str, ...] = ()  # worth doing, not blocking
    publisher_domain: str = ""
    verified_publisher: VerifiedPublisher = field(default_factory=VerifiedPublisher)
    info: InfoUrls = field(default_factory=InfoUrls)
    has_logo: bool = False
    admin_consent_for: tuple[str, ...] = ()  # requested permissions that always need an administrator
    user_consent: str = ""  # a UserConsent value
    admin_consent_url: str = ""
    error: str = field(default="")  # the app could not be read: nothing else is known

    @classmethod
    def unreadable(cls, message: str, consent_url: str = "") -> Readiness:
        return cls(False, (f"the app could not be read: {message}",), admin_consent_url=consent_url, error=message)

    def summary(self) -> str:
        """One line for a person: "ready", or "not ready: <what is missing>"."""
        return "ready" if self.ready else "not ready: " + "; ".join(self.missing)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"ready": self.ready, "missing": list(self.missing), "advice": list(self.advice)}
        if self.error:
            out["error"] = self.error
            out["consent"] = {"adminConsentUrl": self.admin_consent_url}
            return out
        vp = self.verified_publisher
        out["publisherDomain"] = self.publisher_domain
        out["verifiedPublisher"] = (
            {
                "id": vp.publisher_id,
                "displayName": vp.display_name,
                "addedDateTime": to_utc(vp.added).isoformat() if vp.added else None,
            }
            if vp.publisher_id
            else None
        )
        out["branding"] = {
            "marketingUrl": self.info.marketing_url or None,
            "privacyStatementUrl": self.info.privacy_statement_url or None,
            "supportUrl": self.info.support_url or None,
            "termsOfServiceUrl": self.info.terms_of_service_url or None,
            "logo": self.has_logo,
        }
        out["consent"] = {
            "adminConsentRequiredFor": list(self.admin_consent_for),
            "userConsent": self.user_consent,
            "adminConsentUrl": self.admin_consent_url,
        }
        return out


def readiness_of(
    profile: AppProfile,
    record: TenantRecord,
    *,
    consent_url: str,
    manifest_admin_consent: tuple[str, ...] = (),
) -> Readiness:
    """The verdict for one tenant's app. ``manifest_admin_consent``: the permissions of the v2 manifest in use
    that need an administrator (``Manifest.admin_consent``), for a v2 tenant."""
    multitenant = Audience(record.audience) is not Audience.SINGLE_ORG
    missing: list[str] = []
    advice: list[str] = []
    publisher = profile.verified_publisher
    domain = profile.publisher_domain
    if not publisher.publisher_id:
        (missing if multitenant else advice).append("no verified publisher")
    if not domain:
        (missing if multitenant else advice).append("no publisher domain")
    elif domain.lower().endswith(UNVERIFIED_DOMAIN_SUFFIX) and not publisher.publisher_id:
        (missing if multitenant else advice).append(
            f"publisher domain is {domain} (an unverified *{UNVERIFIED_DOMAIN_SUFFIX} domain)"
        )
    info = profile.info
    if multitenant and not info.privacy_statement_url:
        missing.append("no privacy statement URL")
    if multitenant and not info.terms_of_service_url:
        missing.append("no terms of service URL")
    if not profile.logo_url:
        advice.append("no logo (the consent prompt shows a generic icon)")
    admin_only, unknown = _admin_consent(profile, record, manifest_admin_consent)
    if admin_only:
        advice.append(
            f"{', '.join(admin_only)} need{'s' if len(admin_only) == 1 else ''} an administrator's consent in each "
            "organization: send its administrators the adminConsentUrl"
        )
    if unknown:
        advice.append(
            f"permissions this service does not know ({', '.join(unknown)}): check in the portal whether they need "
            "an administrator"
        )
    if not multitenant:
        consent = UserConsent.OWN_DIRECTORY
    elif admin_only:
        consent = UserConsent.ADMIN_ONLY
    elif publisher.publisher_id:
        consent = UserConsent.VERIFIED_PUBLISHER
    else:
        consent = UserConsent.RESTRICTED
        advice.append(
            "until it has a verified publisher, users of organizations that allow user consent only to verified "
            "publishers (or use risk-based step-up consent) cannot consent themselves: their administrators can, "
            "with the adminConsentUrl"
        )
    return Readiness(
        ready=not missing,
        missing=tuple(missing),
        advice=tuple(advice),
        publisher_domain=domain,
        verified_publisher=publisher,
        info=info,
        has_logo=bool(profile.logo_url),
        admin_consent_for=tuple(admin_only),
        user_consent=consent.value,
        admin_consent_url=consent_url,
    )


def _admin_consent(
    profile: AppProfile, record: TenantRecord, manifest_admin_consent: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """(permissions that need an administrator, ids of permissions we cannot name) among those the app asks for."""
    admin_only: list[str] = list(manifest_admin_consent) if record.nylas_target.generation == 2 else []
    unknown: list[str] = []
    for resource in profile.required_resource_access:
        graph = str(resource.get("resourceAppId", "")).lower() == GRAPH_APP_ID
        for access in resource.get("resourceAccess") or []:
            guid, kind = str(access.get("id", "")).lower(), str(access.get("type", ""))
            name = (ADMIN_ONLY_GRAPH_SCOPES.get(guid) or _GRAPH_SCOPE_NAMES.get(guid, "")) if graph else ""
            if kind == "Role":
                # An application permission always needs an administrator.
                label = f"{name or guid} (application permission)"
                if label not in admin_only:
                    admin_only.append(label)
            elif guid in ADMIN_ONLY_GRAPH_SCOPES and graph:
                if name not in admin_only:
                    admin_only.append(name)
            elif record.nylas_target.generation == 3 and not name:
                unknown.append(guid)
    return admin_only, unknown
