"""Tenant status from Key Vault properties: ids, key id, expiry, rotation state. Never a value."""

from __future__ import annotations

from collections.abc import Iterator

from clients.interfaces import SecretStore, SecretVersion
from core.errors import TenantNotFound
from core.record import TenantRecord, secret_name
from provisioning.provision import TenantView


def view_of(props: SecretVersion, record: TenantRecord) -> TenantView:
    return TenantView.of(record, props.id, props.expires_on, props.updated_on)


def list_tenants(vault: SecretStore, prefix: str) -> Iterator[TenantView]:
    for props in vault.list_properties():
        record = TenantRecord.from_tags(props.tags)
        # A copy of a tenant's tags under another name is not that tenant (the scan agrees).
        if record is not None and props.enabled and props.name.lower() == secret_name(prefix, record.tenant).lower():
            yield view_of(props, record)


def get_tenant(vault: SecretStore, prefix: str, tenant: str) -> TenantView:
    latest = vault.get(secret_name(prefix, tenant))
    record = TenantRecord.from_tags(latest.tags) if latest else None
    if latest is None or record is None:
        raise TenantNotFound(f"tenant {tenant} is not provisioned", field="tenant")
    return view_of(latest, record)
