"""Tenant status from Key Vault properties: ids, key id, expiry, rotation state. Never a value."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from core.errors import TenantNotFound
from core.ports import SecretStore, SecretVersion
from core.record import TenantRecord, secret_name
from provisioning.provision import TenantView


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


def get_tenant(vault: SecretStore, prefix: str, tenant: str) -> TenantView:
    latest = vault.get(secret_name(prefix, tenant))
    record = TenantRecord.from_tags(latest.tags) if latest else None
    if latest is None or record is None:
        raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
    return view_of(latest, record)
