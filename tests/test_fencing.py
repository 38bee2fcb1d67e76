"""Fencing: a run that has lost its tenant's lease writes nothing more, and the next run settles.

Real blob leases in Azurite: the lease is broken mid-rotation (as an operator's `break_all`, or
its expiry while the run stalled, would do), and the run must stop before its next write."""

from __future__ import annotations

from typing import Any

import pytest
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from core.errors import LeaseLost
from devenv.scenario import check_anytime, check_settled, credentials, provision, record, settle, sign_in_user
from rotation.engine import Result

WRITES = ("set_secret", "update_secret", "add_password", "remove_password", "patch", "create", "delete")


def writes(emulators) -> dict[str, int]:
    return {r: n for r, n in emulators.world.calls.items() if any(w in r for w in WRITES)}


class BreaksTheLease:
    """The verifier, but the tenant's lease is broken while Entra is being asked."""

    def __init__(self, real: Any, svc, tenant: str) -> None:
        self._real, self._svc, self._tenant = real, svc, tenant

    def verify(self, client_id: str, secret: str) -> Any:
        service = BlobServiceClient.from_connection_string(self._svc.settings.storage.connection_string)
        blob = service.get_blob_client(self._svc.settings.lease_container, self._tenant)
        BlobLeaseClient(blob).break_lease(lease_break_period=0)
        return self._real.verify(client_id, secret)


@pytest.mark.parametrize("target", ["v3-credential", "v2-integration"])
def test_a_run_whose_lease_is_broken_mid_rotation_writes_nothing_more_and_the_next_run_settles(svc, emulators, target):
    tenant = provision(svc, emulators, "fenced", target)
    if tenant.v3:
        sign_in_user(emulators, tenant, "ada@outlook.com")
    emulators.world.clock.advance(days=710)
    real = svc.deps.verifier
    svc.deps.verifier = BreaksTheLease(real, svc, tenant.name)
    emulators.world.reset_calls()
    try:
        with pytest.raises(LeaseLost):
            svc.engine.rotate(tenant.name)
    finally:
        svc.deps.verifier = real

    # create (addPassword, the pending version) happened before the break; nothing after it.
    assert writes(emulators) == {"graph.add_password": 1, "keyvault.set_secret": 1}
    assert record(svc, tenant)[1].state.value == "pending"
    assert check_anytime(svc, emulators, tenant) == []
    assert settle(svc, emulators, tenant)[-1].result is Result.ROTATED
    assert check_settled(svc, emulators, tenant) == []
    assert len(credentials(emulators, tenant)[0]) == 1


def test_a_write_outside_any_lease_is_not_fenced(svc, emulators):
    svc.deps.vault.set("plain", "value-not-a-secret-0001", tags={}, expires_on=None, content_type="")
    assert emulators.world.keyvault.value_of("plain") == "value-not-a-secret-0001"
