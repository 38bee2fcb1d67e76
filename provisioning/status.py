"""Tenant status from Key Vault properties: ids, key id, expiry, rotation state. Never a value.

One tenant's status may also say whether its app is ready for production (``readiness``, provisioning/
readiness.py): that reads the app from Graph (one GET), so it is asked for, never implied. The listing of
every tenant stays Key Vault only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from core.errors import ServiceError, TenantNotFound
from core.ports import GraphApps, SecretStore, SecretVersion
from core.record import TenantRecord, secret_name
from provisioning.provision import Provisioner, TenantView
from provisioning.readiness import Readiness, admin_consent_url, readiness_of


@dataclass(frozen=True)
class ReadinessContext:
    """What judging an app's readiness needs beside the record: Graph, and where admins consent."""

    graph: GraphApps
    authority_host: str
    home_tenant_id: str
    manifest_admin_consent: tuple[str, ...] = ()

    @classmethod
    def of(cls, provisioner: Provisioner) -> ReadinessContext:
        """From the service's provisioner (``Services.provisioner``): its Graph, authority and v2 manifest."""
        return cls(
            provisioner.deps.graph,
            provisioner.authority_host,
            provisioner.policy.tenant_id,
            provisioner.manifest.admin_consent,
        )

    def readiness(self, record: TenantRecord) -> Readiness:
        """One Graph GET. An app that cannot be read is "not ready", with why, rather than a failed status."""
        url = admin_consent_url(self.authority_host, self.home_tenant_id, record)
        try:
            profile = self.graph.profile(record.app_object_id)
        except ServiceError as exc:
            return Readiness.unreadable(exc.message, url)
        return readiness_of(profile, record, consent_url=url, manifest_admin_consent=self.manifest_admin_consent)


def view_of(props: SecretVersion, record: TenantRecord) -> TenantView:
    return TenantView.of(record, props.id, props.expires_on, props.updated_on)


def list_tenants(vault: SecretStore, prefix: str) -> Iterator[TenantView]:
    """Every tenant of ours, from one paged listing. A v3 tenant that replaces a v2 one shows
    ``replaces`` while the old one lives, and the old one shows ``replacedBy``."""
    views: dict[str, TenantView] = {}
    for props in vault.list_properties():
        record = TenantRecord.from_tags(props.tags)
        # A copy of a tenant's tags under another name is not that tenant (the scan agrees).
        if record is not None and props.enabled and props.name.lower() == secret_name(prefix, record.tenant).lower():
            views[record.tenant] = view_of(props, record)
    successors = {v.replaces: v.tenant for v in views.values() if v.replaces in views}
    for view in views.values():
        replaces = view.replaces if view.replaces in views else ""
        yield replace(view, replaces=replaces, replaced_by=successors.get(view.tenant, ""))


def get_tenant(
    vault: SecretStore, prefix: str, tenant: str, *, readiness: ReadinessContext | None = None
) -> TenantView:
    """One tenant; with ``readiness``, also whether its app is ready for production (one Graph GET)."""
    latest = vault.get(secret_name(prefix, tenant))
    record = TenantRecord.from_tags(latest.tags) if latest else None
    if latest is None or record is None:
        raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
    view = view_of(latest, record)
    if readiness is not None:
        view = replace(view, readiness=readiness.readiness(record))
    return view


def readiness_by_tenant(
    listing: Iterable[SecretVersion], prefix: str, context: ReadinessContext
) -> dict[str, tuple[str, ...]]:
    """What each tenant of a Key Vault listing still misses for production (() when ready): one Graph GET per
    tenant, for ``plan --readiness``."""
    out: dict[str, tuple[str, ...]] = {}
    for props in listing:
        record = TenantRecord.from_tags(props.tags)
        if record is None or not props.enabled or props.name.lower() != secret_name(prefix, record.tenant).lower():
            continue
        out[record.tenant] = context.readiness(record).missing
    return out
