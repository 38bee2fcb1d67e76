"""Branding: what people see of a tenant's app when they consent to it, its ``info`` URLs and its logo.

Applied idempotently: the app's profile is read (one GET) and compared with what the request asks for, and
nothing is written when they agree, so a second identical request makes no write.

- ``info`` (Graph's informationalUrl): the four writable URLs are compared with what Graph returns. A PATCH
  replaces ``info`` whole (learn.microsoft.com/entra/identity-platform/howto-add-terms-of-service-privacy-statement:
  "be careful not to overwrite any pre-existing values"), so it sends every field: those asked for, and the
  others as they are. A field the request does not name is left alone; none is ever removed here.
- the logo: Graph never answers with the image, only with ``info.logoUrl`` (a CDN URL). So the SHA-256 of the
  logo we upload is kept on the app as a tag, ``nylas-entra-rotator:logo-sha256=<hex>``, written in the same
  PATCH as ``info`` right after the upload. The logo is uploaded again only when the requested logo's hash
  differs from that tag, or when the app has no logo any more (``logoUrl`` empty: someone removed it). A logo
  a person changed in the portal is left alone until the request asks for a different one. A crash between
  the upload and the tag costs one more upload on the next request, no more.
- Writes are made under the tenant's lease (every write is fenced, clients/fencing.py): at provisioning the
  lease is held already; otherwise it is taken only once there is something to write (a read takes none),
  and the profile is read again under it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.errors import Conflict, TenantNotFound
from core.ports import AppProfile, InfoUrls
from core.record import MARKER, RotationState, TenantRecord, secret_name
from provisioning.request import Branding, Logo
from rotation.engine import Dependencies

LOGO_TAG_PREFIX = f"{MARKER}:logo-sha256="


@dataclass(frozen=True)
class BrandingResult:
    tenant: str
    app_object_id: str
    changed: tuple[str, ...]  # "logo", "info": what was written; () when the app already looked so
    profile: AppProfile  # the app as it is now (logoUrl as last read: Graph makes a new one on upload)

    def to_json(self) -> dict[str, object]:
        info = self.profile.info
        return {
            "tenant": self.tenant,
            "appObjectId": self.app_object_id,
            "changed": list(self.changed),
            "branding": {
                "marketingUrl": info.marketing_url or None,
                "privacyStatementUrl": info.privacy_statement_url or None,
                "supportUrl": info.support_url or None,
                "termsOfServiceUrl": info.terms_of_service_url or None,
                "logoUrl": self.profile.logo_url or None,
            },
        }


def wanted_info(current: InfoUrls, wanted: Branding) -> InfoUrls:
    """``info`` as it should be: the fields the request names, the others as they are."""
    return InfoUrls(
        marketing_url=current.marketing_url if wanted.marketing_url is None else wanted.marketing_url,
        privacy_statement_url=(
            current.privacy_statement_url if wanted.privacy_statement_url is None else wanted.privacy_statement_url
        ),
        support_url=current.support_url if wanted.support_url is None else wanted.support_url,
        terms_of_service_url=(
            current.terms_of_service_url if wanted.terms_of_service_url is None else wanted.terms_of_service_url
        ),
    )


def applied_logo(profile: AppProfile) -> str:
    """The SHA-256 of the logo we last uploaded to this app ("" when none)."""
    return next((t[len(LOGO_TAG_PREFIX) :] for t in profile.tags if t.startswith(LOGO_TAG_PREFIX)), "")


def changes(profile: AppProfile, wanted: Branding) -> tuple[InfoUrls | None, Logo | None]:
    """What has to be written: the new ``info`` (None: as it is) and the logo to upload (None: as it is)."""
    info = wanted_info(profile.info, wanted)
    logo = wanted.logo
    if logo is not None and applied_logo(profile) == logo.sha256 and profile.logo_url:
        logo = None
    return (info if info != profile.info else None), logo


def apply_branding(
    deps: Dependencies, tenant: str, object_id: str, wanted: Branding | None, *, locked: bool = False
) -> BrandingResult | None:
    """Make the app look as ``wanted`` says; None (no branding asked for) costs nothing. ``locked``: the caller
    holds the tenant's lease already (provisioning)."""
    if wanted is None:
        return None
    profile = deps.graph.profile(object_id)
    if changes(profile, wanted) == (None, None):
        return BrandingResult(tenant, object_id, (), profile)
    if locked:
        return _write(deps, tenant, object_id, wanted, profile)
    with deps.leases.hold(tenant):
        # Under the lease: another run may have branded it meanwhile.
        return _write(deps, tenant, object_id, wanted, deps.graph.profile(object_id))


def _write(deps: Dependencies, tenant: str, object_id: str, wanted: Branding, profile: AppProfile) -> BrandingResult:
    info, logo = changes(profile, wanted)
    changed: list[str] = []
    tags: tuple[str, ...] | None = None
    if logo is not None:
        deps.graph.put_logo(object_id, logo.content_type, logo.data)
        tags = (*(t for t in profile.tags if not t.startswith(LOGO_TAG_PREFIX)), LOGO_TAG_PREFIX + logo.sha256)
        changed.append("logo")
    if info is not None:
        changed.append("info")
    if info is not None or tags is not None:
        # The whole info always (Graph replaces it whole): unchanged fields are sent as they are.
        deps.graph.update_profile(object_id, info=info or profile.info, tags=tags)
    after = replace(profile, info=info or profile.info, tags=tags if tags is not None else profile.tags)
    return BrandingResult(tenant, object_id, tuple(changed), after)


def update_branding(deps: Dependencies, prefix: str, tenant: str, wanted: Branding) -> BrandingResult:
    """PATCH /api/tenants/{tenant} (and ``python -m rotator branding``): brand a provisioned tenant's app. The
    answer reads the app again when something changed (its new logoUrl)."""
    latest = deps.vault.get(secret_name(prefix, tenant))
    record = TenantRecord.from_tags(latest.tags) if latest else None
    if record is None:
        raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
    if record.state is RotationState.RETIRING:
        raise Conflict(f"tenant {tenant} is being retired: its app is not branded any more", field="tenant")
    result = apply_branding(deps, tenant, record.app_object_id, wanted)
    assert result is not None
    if result.changed:
        result = replace(result, profile=deps.graph.profile(record.app_object_id))
    return result
