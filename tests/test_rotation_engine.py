"""The rotation state machine against the emulators and Azurite: create, test, set, finish."""

from __future__ import annotations

import threading

import pytest

from core.errors import DependencyUnavailable, NothingToConfirm, NylasStateUnknown
from core.record import RotationState
from devenv.scenario import (
    TARGETS,
    add_foreign_credential,
    check_anytime,
    check_settled,
    credentials,
    mark_baseline,
    nylas_holds_working_secret,
    operator_pastes,
    provision,
    record,
    settle,
    sign_in_user,
)
from rotation.engine import Result

INTO_WINDOW_DAYS = 710  # a 730-day secret with a 30-day window is due after day 700


@pytest.mark.parametrize("target", TARGETS)
def test_a_due_rotation_replaces_the_secret_everywhere_and_revokes_the_old_one_last(svc, emulators, target):
    tenant = provision(svc, emulators, "due", target)
    _, before = record(svc, tenant)
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)

    outcomes = settle(svc, emulators, tenant)

    _, after = record(svc, tenant)
    assert after.key_id != before.key_id and after.state is RotationState.CURRENT
    assert [p.key_id for p in credentials(emulators, tenant)[0]] == [after.key_id]
    assert outcomes[-1].result is Result.ROTATED
    assert check_settled(svc, emulators, tenant) == []


def test_a_tenant_that_is_not_due_is_left_alone_without_a_write(svc, emulators):
    tenant = provision(svc, emulators, "fresh", "v3-connector")
    emulators.world.reset_calls()

    outcome = svc.engine.rotate(tenant.name)

    assert outcome.result is Result.NOT_DUE
    writes = [r for r in emulators.world.calls if r.split(".")[1].startswith(("set", "update", "add", "remove"))]
    assert writes == [] and not any("patch" in r for r in emulators.world.calls)


def test_manual_target_parks_reminds_escalates_and_finishes_on_confirm(svc, emulators, alerts):
    tenant = provision(svc, emulators, "hand", "manual")
    alerts.alerts.clear()
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)

    first = svc.engine.rotate(tenant.name)
    assert first.result is Result.AWAITING_CONFIRMATION
    assert alerts.kinds() == ["manual-action"]
    assert len(credentials(emulators, tenant)[0]) == 2  # the old one stays live until confirmed
    assert nylas_holds_working_secret(emulators, tenant)

    svc.engine.rotate(tenant.name)  # next night: a reminder
    emulators.world.clock.advance(days=15)  # the old secret now has 5 days left
    svc.engine.rotate(tenant.name)
    assert alerts.kinds() == ["manual-action", "manual-reminder", "manual-escalation"]
    assert all("Key Vault secret" in a.action and "confirm" in a.action for a in alerts.alerts)

    operator_pastes(svc, emulators, tenant)
    done = svc.engine.confirm(tenant.name)
    assert done.result is Result.ROTATED
    assert check_settled(svc, emulators, tenant) == []


def test_confirm_without_a_pending_manual_rotation_is_a_conflict(svc, emulators):
    tenant = provision(svc, emulators, "calm", "manual")
    with pytest.raises(NothingToConfirm):
        svc.engine.confirm(tenant.name)


def test_nylas_refusing_the_new_secret_keeps_both_secrets_and_the_next_run_pushes_again(svc, emulators, alerts):
    tenant = provision(svc, emulators, "refused", "v3-connector")
    _, before = record(svc, tenant)
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    emulators.world.faults.inject("nylas.v3_patch_connector", status=401, times=10)

    outcome = svc.engine.rotate(tenant.name)

    assert outcome.result is Result.NYLAS_REFUSED
    _, after = record(svc, tenant)
    assert after.state is RotationState.PENDING and after.previous_key_id == before.key_id
    # Nothing revoked: an earlier try may have landed, so Nylas may hold either secret.
    assert {p.key_id for p in credentials(emulators, tenant)[0]} == {before.key_id, after.key_id}
    assert nylas_holds_working_secret(emulators, tenant)
    assert alerts.kinds()[-1] == "nylas-refused"
    emulators.world.faults.clear()
    assert settle(svc, emulators, tenant)[-1].result is Result.ROTATED  # the next run pushes again
    assert check_settled(svc, emulators, tenant) == []


@pytest.mark.parametrize("target", ["v3-connector", "v2-integration"])
@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_a_failed_read_back_after_the_write_landed_revokes_nothing_and_settles(svc, emulators, alerts, target, status):
    tenant = provision(svc, emulators, "doubt", target)
    if target.startswith("v3-"):
        sign_in_user(emulators, tenant, "ada@outlook.com")
    _, before = record(svc, tenant)
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    read_back = "nylas.v3_get_connector" if target == "v3-connector" else "nylas.v2_get_integration"
    emulators.world.faults.inject(read_back, status=status, times=10)

    with pytest.raises(NylasStateUnknown):
        svc.engine.rotate(tenant.name)

    _, during = record(svc, tenant)
    held = emulators.world.nylas.current(tenant.nylas_app_id)
    new_secret = emulators.world.keyvault.value_of(f"nylas-entra-{tenant.name}")
    assert held is not None and held[1] == new_secret  # the write landed
    assert {p.key_id for p in credentials(emulators, tenant)[0]} == {before.key_id, during.key_id}
    assert check_anytime(svc, emulators, tenant) == []
    assert "rotation-failed" not in alerts.kinds()  # nothing rolled back
    emulators.world.faults.clear()
    assert settle(svc, emulators, tenant)[-1].result is Result.ROTATED
    assert check_settled(svc, emulators, tenant) == []


def test_a_secret_entra_never_accepts_is_rolled_back_after_the_budget(svc, emulators, alerts):
    tenant = provision(svc, emulators, "slow", "v2-integration")
    _, before = record(svc, tenant)
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    emulators.world.entra.propagation_delay = 10_000.0  # far past VERIFY_BUDGET_SECONDS

    outcome = svc.engine.rotate(tenant.name)

    assert outcome.result is Result.ROLLED_BACK
    assert "verification-failed" in alerts.kinds() and "rotation-failed" in alerts.kinds()
    assert record(svc, tenant)[1].key_id == before.key_id
    assert nylas_holds_working_secret(emulators, tenant)


def test_foreign_credentials_survive_three_rotations(svc, emulators):
    # Work accounts only: an app that also signs in personal accounts holds two secrets at most.
    tenant = provision(svc, emulators, "shared", "v3-connector", audience="multi-org")
    add_foreign_credential(emulators, tenant, "ops break-glass")
    add_foreign_credential(emulators, tenant, "legacy integration")

    for _ in range(3):
        emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
        mark_baseline(emulators, tenant)
        assert settle(svc, emulators, tenant)[-1].result is Result.ROTATED
        assert check_settled(svc, emulators, tenant) == []

    ours, theirs = credentials(emulators, tenant)
    assert {p.key_id for p in theirs} == tenant.foreign and len(ours) == 1
    assert check_settled(svc, emulators, tenant) == []


def test_ten_concurrent_rotations_of_one_tenant_make_exactly_one_new_credential(svc, emulators):
    tenant = provision(svc, emulators, "race", "v3-connector")
    latest, _ = record(svc, tenant)
    emulators.world.reset_calls()
    results = []
    start = threading.Barrier(10)

    def one() -> None:
        start.wait()
        results.append(svc.engine.rotate(tenant.name, force=True, seen_version=latest.version).result)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert emulators.world.calls["graph.add_password"] == 1
    assert results.count(Result.ROTATED) == 1
    assert set(results) <= {Result.ROTATED, Result.BUSY, Result.STALE_EVENT}
    assert check_settled(svc, emulators, tenant) == []


def test_a_credential_orphaned_by_a_lost_answer_is_removed_by_the_next_run(svc, emulators):
    tenant = provision(svc, emulators, "orphan", "v3-connector")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    # addPassword takes effect but its answer never arrives: the secret text is lost to us.
    emulators.world.faults.inject("graph.add_password", drop=True, phase="after", times=1)
    emulators.world.faults.inject("graph.add_password", status=503, times=20)

    with pytest.raises(DependencyUnavailable):
        svc.engine.rotate(tenant.name)
    assert len(credentials(emulators, tenant)[0]) == 2  # the orphan and the live one

    emulators.world.faults.clear()
    settle(svc, emulators, tenant)
    assert check_settled(svc, emulators, tenant) == []


def test_nylas_v2_rate_limit_is_waited_out_from_x_ratelimit_reset(svc, emulators):
    tenant = provision(svc, emulators, "limited", "v2-integration")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    emulators.world.faults.inject("nylas.v2_patch_integration", status=429, retry_after=7, times=1)
    before = emulators.world.clock.now()

    assert svc.engine.rotate(tenant.name).result is Result.ROTATED
    assert (emulators.world.clock.now() - before).total_seconds() >= 7


def test_credentials_named_like_ours_by_a_person_survive_rotations(svc, emulators):
    tenant = provision(svc, emulators, "lookalike", "v2-integration")
    for name in ("nylas-entra-rotator manual copy", "nylas-entra-rotator-backup", "nylas-entra-rotator 0123456789AB"):
        add_foreign_credential(emulators, tenant, name)

    for _ in range(2):
        emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
        assert settle(svc, emulators, tenant)[-1].result is Result.ROTATED
        assert check_settled(svc, emulators, tenant) == []

    assert {p.key_id for p in credentials(emulators, tenant)[1]} == tenant.foreign


def test_an_app_whose_service_principal_was_deleted_gets_it_back_and_rotates(svc, emulators):
    tenant = provision(svc, emulators, "no-sp", "v2-integration")
    world = emulators.world
    with world.lock:
        sp = world.graph.sp_by_app_id(tenant.client_id)
        assert sp is not None
        del world.graph.service_principals[sp.object_id]  # someone deleted it in the portal
    world.clock.advance(days=INTO_WINDOW_DAYS)

    outcome = svc.engine.rotate(tenant.name)  # Entra answers AADSTS7000229 until it exists again

    assert outcome.result is Result.ROTATED
    assert world.graph.sp_by_app_id(tenant.client_id) is not None
    assert check_settled(svc, emulators, tenant) == []


def test_a_gateway_html_page_from_graph_is_a_transient_failure_not_a_crash(svc, emulators):
    tenant = provision(svc, emulators, "gateway", "v2-integration")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    emulators.world.faults.inject("graph.add_password", status=502, html=True, times=20)

    with pytest.raises(DependencyUnavailable):
        svc.engine.rotate(tenant.name)

    emulators.world.faults.clear()
    assert settle(svc, emulators, tenant)[-1].result is Result.ROTATED
    assert check_settled(svc, emulators, tenant) == []


def test_a_crash_inside_a_rollback_never_leaves_the_record_on_a_deleted_credential(svc, emulators):
    """Rollback restores Key Vault first and removes the new credential last: a crash between the
    two leaves an orphan (removed by the next run), never a record pointing at nothing."""
    from tests.test_rotation_fault_matrix import CrashAt, SimulatedCrash

    tenant = provision(svc, emulators, "rollback", "v2-integration")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    emulators.world.entra.propagation_delay = 10_000.0  # the new secret never verifies: roll back
    real = svc.deps.graph
    for when in ("crash-before", "crash-after"):
        svc.deps.graph = CrashAt(real, "remove_password", 1, when)
        try:
            with pytest.raises(SimulatedCrash):
                svc.engine.rotate(tenant.name, force=True)
        finally:
            svc.deps.graph = real
        assert check_anytime(svc, emulators, tenant) == [], when
    emulators.world.entra.propagation_delay = 0.0
    assert settle(svc, emulators, tenant, force=True)[-1].result is Result.ROTATED
    assert check_settled(svc, emulators, tenant) == []
