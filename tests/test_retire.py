"""Retiring a tenant: DELETE /api/tenants/{tenant}?confirm=… (and `python -m rotator retire`).

Every target kind retires; a second DELETE is harmless; no confirmation, no change; and a run
that dies (or meets a failing dependency) at any outside call of a retirement settles on the
next call: the fault-matrix cells below. The end state is judged from the emulated world."""

from __future__ import annotations

from collections import Counter
from typing import Any

import azure.functions as func
import pytest

from blueprints.http_api import retire_tenant
from core.errors import ServiceError
from devenv.oracle import LOOKALIKE
from devenv.scenario import (
    TARGETS,
    Tenant,
    add_foreign_credential,
    credentials,
    nylas_credential_id,
    provision,
)
from emulators import Emulators
from tests.support import calls_by_dependency, response_json
from tests.test_rotation_fault_matrix import (
    HTTP_FAULTS,
    LOST,
    PERSISTENT,
    CrashAt,
    Recorder,
    SimulatedCrash,
    is_write,
)

URL = "https://func.example/api/tenants"
SEAMS = ("graph", "vault", "nylas")
RETIREMENT_CELLS: dict[str, tuple[int, int]] = {}  # target -> (cells, failed); printed at the end


def delete(tenant: str, **params: str):
    request = func.HttpRequest(
        method="DELETE", url=f"{URL}/{tenant}", headers={}, params=params, route_params={"tenant": tenant}, body=b""
    )
    return retire_tenant(request)


def secret_names(emulators: Emulators) -> set[str]:
    return {e.name for e in emulators.world.keyvault.secrets.values()}


def deleted_names(emulators: Emulators) -> set[str]:
    return {d.entry.name for d in emulators.world.keyvault.deleted.values()}


def retired_as_asked(emulators: Emulators, tenant: Tenant, *, app_deleted: bool) -> list[str]:
    """What must be true once a retirement is done, read from the emulated world."""
    broken = []
    app = emulators.world.graph.apps.get(tenant.object_id)
    if app_deleted != (app is None):
        broken.append(f"the app registration {'survived' if app else 'was deleted without being asked'}")
    if app is not None:
        ours, theirs = credentials(emulators, tenant)
        if ours:
            broken.append(f"{len(ours)} credentials of ours survived")
        if not tenant.foreign <= {p.key_id for p in theirs}:
            broken.append("a foreign credential was removed")
    if tenant.target == "v3-credential" and nylas_credential_id(emulators, tenant):
        broken.append("the Nylas connector credential survived")
    if any(n.startswith(f"nylas-entra-{tenant.name}") for n in secret_names(emulators)):
        broken.append("a Key Vault secret of the tenant was not deleted")
    if f"nylas-entra-{tenant.name}" not in deleted_names(emulators):
        broken.append("the tenant's Key Vault secret is not soft-deleted (recoverable)")
    return broken


def fresh(svc, emulators: Emulators, target: str, name: str = "old") -> Tenant:
    emulators.world.reset()
    extra: dict[str, Any] = {"audience": "multi-org"} if target.startswith("v3-") else {}
    tenant = provision(svc, emulators, name, target, **extra)
    add_foreign_credential(emulators, tenant, LOOKALIKE)
    emulators.world.reset_calls()
    return tenant


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_kind_retires_and_a_second_delete_is_harmless(svc, emulators, target):
    tenant = fresh(svc, emulators, target)

    first = delete(tenant.name, confirm=tenant.name, deleteApp="true")
    second = delete(tenant.name, confirm=tenant.name)

    assert first.status_code == 200, first.get_body()
    assert response_json(first)["alreadyRetired"] is False
    assert retired_as_asked(emulators, tenant, app_deleted=True) == []
    assert second.status_code == 200 and response_json(second)["alreadyRetired"] is True


def test_retiring_without_deleting_the_app_keeps_it_and_its_foreign_secrets(svc, emulators):
    tenant = fresh(svc, emulators, "v3-credential")

    response = delete(tenant.name, confirm=tenant.name)

    out = response_json(response)
    assert out["appDeleted"] is False and out["nylasCredentialDeleted"] is True
    assert retired_as_asked(emulators, tenant, app_deleted=False) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "confirm"), ({"confirm": "someone-else"}, "confirm"), ({"confirm": "old", "deleteApp": "yes"}, "deleteApp")],
)
def test_retiring_without_the_confirmation_changes_nothing(svc, emulators, params, field):
    tenant = fresh(svc, emulators, "v3-credential")

    response = delete(tenant.name, **params)

    assert response.status_code == 400
    assert response_json(response)["error"]["field"] == field
    assert calls_by_dependency(emulators) == {}
    assert f"nylas-entra-{tenant.name}" in secret_names(emulators)


def test_retiring_a_tenant_never_provisioned_is_not_found(svc, emulators):
    response = delete("ghost", confirm="ghost")
    assert response.status_code == 404


def test_a_replaced_v2_tenant_shows_beside_its_v3_successor_until_it_is_retired(svc, emulators):
    from provisioning.status import list_tenants

    old = provision(svc, emulators, "old", "v2-integration")
    provision(svc, emulators, "new", "v3-credential", replaces="old")
    views = {v.tenant: v for v in list_tenants(svc.deps.vault, svc.settings.secret_prefix)}
    assert views["new"].replaces == "old" and views["old"].replaced_by == "new"

    assert delete(old.name, confirm=old.name).status_code == 200

    views = {v.tenant: v for v in list_tenants(svc.deps.vault, svc.settings.secret_prefix)}
    assert set(views) == {"new"} and views["new"].replaces == ""


def test_a_tenant_being_retired_is_never_rotated(svc, emulators):
    tenant = fresh(svc, emulators, "v2-integration")
    real = svc.deps.vault
    svc.deps.vault = CrashAt(real, "delete", 1, "crash-before")
    try:
        with pytest.raises(SimulatedCrash):
            svc.retirement.retire(tenant.name, confirm=tenant.name)
    finally:
        svc.deps.vault = real
    emulators.world.clock.advance(days=710)

    outcome = svc.engine.rotate(tenant.name, force=True)

    assert outcome.result.value == "retiring"
    assert credentials(emulators, tenant)[0] == []


# --- the fault matrix of a retirement ------------------------------------------------------------


def retirement_cells(svc, emulators: Emulators, target: str) -> list[tuple[str, str, int]]:
    tenant = fresh(svc, emulators, target)
    log: list[tuple[str, str]] = []
    real = {name: getattr(svc.deps, name) for name in SEAMS}
    for name in SEAMS:
        setattr(svc.deps, name, Recorder(real[name], name, log))
    try:
        svc.retirement.retire(tenant.name, confirm=tenant.name, delete_app=True)
    finally:
        for name, client in real.items():
            setattr(svc.deps, name, client)
    assert retired_as_asked(emulators, tenant, app_deleted=True) == []
    cells = []
    seen: Counter[str] = Counter()
    for route, *_ in emulators.world.call_log:
        if route.startswith("control.") or route == "keyvault.challenge":
            continue
        seen[route] += 1
        kinds = HTTP_FAULTS + ((LOST,) if is_write(route) else ())
        cells += [(kind, route, seen[route]) for kind in kinds]
    seen.clear()
    for seam, method in log:
        seen[f"{seam}.{method}"] += 1
        cells += [(kind, f"{seam}.{method}", seen[f"{seam}.{method}"]) for kind in ("crash-before", "crash-after")]
    return cells


def run_retirement_cell(svc, emulators: Emulators, target: str, kind: str, where: str, nth: int) -> list[str]:
    tenant = fresh(svc, emulators, target)
    restore: dict[str, Any] = {}
    faults = emulators.world.faults
    if kind.startswith("crash"):
        seam, method = where.split(".", 1)
        restore[seam] = getattr(svc.deps, seam)
        setattr(svc.deps, seam, CrashAt(restore[seam], method, nth, kind))
    elif kind == LOST:
        faults.inject(where, drop=True, phase="after", times=1, skip=nth - 1)
    elif kind == "drop":
        faults.inject(where, drop=True, times=PERSISTENT, skip=nth - 1)
    else:
        retry_after = 1 if kind == "429" else None
        faults.inject(where, status=int(kind), retry_after=retry_after, times=PERSISTENT, skip=nth - 1)
    try:
        svc.retirement.retire(tenant.name, confirm=tenant.name, delete_app=True)
    except (SimulatedCrash, ServiceError):
        pass
    finally:
        if kind.startswith("crash"):
            happened = getattr(svc.deps, where.split(".", 1)[0]).fired
        else:
            armed = [f for f in faults.pending() if f.route == where]
            happened = not armed if kind == LOST else bool(armed) and armed[0].times < PERSISTENT and not armed[0].skip
        for seam, client in restore.items():
            setattr(svc.deps, seam, client)
        faults.clear()
    if not happened:
        return ["vacuous: the fault never fired inside the service"]
    # The next call settles it, whatever the first left behind.
    again = delete(tenant.name, confirm=tenant.name, deleteApp="true")
    broken = [] if again.status_code == 200 else [f"the next DELETE answered {again.status_code}"]
    return broken + retired_as_asked(emulators, tenant, app_deleted=True)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_retirement_settles_on_the_next_call_after_any_fault_at_any_outside_call(svc, emulators, target):
    cells = retirement_cells(svc, emulators, target)
    failures = []
    for kind, where, nth in cells:
        broken = run_retirement_cell(svc, emulators, target, kind, where, nth)
        if broken:
            failures.append(f"{kind} @ {where} #{nth}: {'; '.join(broken)}")
    RETIREMENT_CELLS[target] = (len(cells), len(failures))
    assert cells and not failures, f"{len(failures)} of {len(cells)} cells failed:\n" + "\n".join(failures)
