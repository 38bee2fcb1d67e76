"""The nightly scan through the real timer function: one paged listing of Key Vault (no GET per
secret), one queue message per tenant that is due, stuck or awaiting confirmation, one summary
line; and the queued work then rotates through the queue function."""

from __future__ import annotations

import logging
import math

import pytest

from bench.scan_bench import seed
from tests.support import drain_queue, our_credentials, peek_requests, provision, record_of, run_nightly_scan

SCAN_LOGGER = "rotation.operations"


def run_scan(past_due: bool = False) -> None:
    run_nightly_scan(past_due=past_due)


def scan_lines(caplog):
    return [r for r in caplog.records if r.name == SCAN_LOGGER and r.getMessage().startswith("scan:")]


def test_scan_of_260_secrets_costs_11_list_calls_and_no_get(svc, emulators, caplog):
    seeded = seed(emulators.world, 260)
    emulators.world.reset_calls()

    run_scan()

    calls = emulators.world.calls
    assert calls["keyvault.list_secrets"] == math.ceil(260 / 25) == 11
    assert calls["keyvault.get_secret"] == 0
    assert calls["keyvault.list_versions"] == 0
    queued = peek_requests(svc)
    assert len(queued) == seeded.needing_work == 78
    assert len({q["tenant"] for q in queued}) == len(queued)  # one message per tenant
    lines = scan_lines(caplog)
    assert len(lines) == 1
    line = lines[0]
    assert (line.seen, line.tenants, line.due, line.stuck, line.awaiting_confirmation, line.queued) == (
        260,
        seeded.tenants,
        seeded.count("due"),
        seeded.count("stuck"),
        seeded.count("awaiting"),
        78,
    )


def test_scan_queues_due_stuck_and_awaiting_tenants_with_reason_and_skips_the_rest(svc, emulators):
    seed(emulators.world, 20)  # two of each kind in bench.scan_bench.MIX

    run_scan()

    by_reason: dict[str, list[str]] = {}
    for q in peek_requests(svc):
        assert set(q) == {"tenant", "reason", "version", "force"}
        assert q["force"] is False
        by_reason.setdefault(q["reason"], []).append(q["tenant"])
    # MIX order: 4 healthy, pending-fresh, due, stuck, awaiting, foreign, nylas-credential.
    assert sorted(by_reason["due"]) == ["t000005", "t000015"]
    assert sorted(by_reason["stuck"]) == ["t000006", "t000016"]
    assert sorted(by_reason["awaiting-confirmation"]) == ["t000007", "t000017"]
    assert set(by_reason) == {"due", "stuck", "awaiting-confirmation"}


def test_scan_of_healthy_tenants_queues_nothing_and_still_logs_its_summary(svc, emulators, caplog):
    provision(emulators, "calm")
    emulators.world.reset_calls()

    run_scan()

    assert peek_requests(svc) == []
    assert emulators.world.calls["keyvault.get_secret"] == 0
    [line] = scan_lines(caplog)
    assert (line.tenants, line.healthy, line.queued) == (1, 1, 0)


def test_scan_ignores_a_copy_of_our_tags_under_a_name_that_is_not_the_tenants_secret(svc, emulators):
    provision(emulators, "real")
    emulators.world.clock.advance(days=710)
    world = emulators.world
    with world.lock:
        entry = world.keyvault.secrets["nylas-entra-real"]
        copied = type(entry)(name="backup-of-real", versions=list(entry.versions))
        world.keyvault.secrets["backup-of-real"] = copied

    run_scan()

    assert [(q["tenant"], q["reason"]) for q in peek_requests(svc)] == [("real", "due")]


def test_due_tenants_rotate_through_the_queue_once(svc, emulators, alerts):
    first = provision(emulators, "alpha")
    provision(emulators, "beta", "v2-integration")
    emulators.world.clock.advance(days=710)  # 730-day secrets, rotate 30 days before expiry
    emulators.world.reset_calls()

    run_scan()
    run_scan()  # a second scan before the queue drains (a timer retry, a late run) queues again
    deliveries = drain_queue(svc)

    assert sorted(d.request["tenant"] for d in deliveries) == ["alpha", "alpha", "beta", "beta"]
    assert all(not d.error for d in deliveries)
    assert emulators.world.calls["graph.add_password"] == 2  # one rotation each, not two
    assert emulators.world.calls["graph.remove_password"] == 2
    for tenant, app in (("alpha", "nylas-alpha"), ("beta", "nylas-beta")):
        record = record_of(svc, tenant)
        assert record.state == "current"
        assert record.previous_key_id
        assert emulators.world.nylas_secret_works(app)
    assert [p.key_id for p in our_credentials(emulators, first["appObjectId"])] == [record_of(svc, "alpha").key_id]
    assert alerts.alerts == []

    run_scan()
    assert peek_requests(svc) == []


def test_stuck_pending_rotation_is_queued_after_stuck_after_hours_and_then_finishes(svc, emulators):
    provision(emulators, "stuck")
    emulators.world.clock.advance(days=710)
    emulators.world.faults.inject("nylas.v3_patch_connector", status=503, times=1000)
    deliveries = drain_queue_after_scan(svc)
    assert {d.error for d in deliveries if d.queue == svc.settings.rotation_queue} == {"NylasStateUnknown"}
    assert record_of(svc, "stuck").state == "pending"
    emulators.world.faults.clear()

    emulators.world.clock.advance(seconds=3600)  # within STUCK_AFTER_HOURS (6): a run may still be at it
    run_scan()
    assert peek_requests(svc) == []

    emulators.world.clock.advance(seconds=6 * 3600)
    run_scan()
    assert [(q["tenant"], q["reason"]) for q in peek_requests(svc)] == [("stuck", "stuck")]
    drain_queue(svc)
    assert record_of(svc, "stuck").state == "current"
    assert emulators.world.nylas_secret_works("nylas-stuck")


def drain_queue_after_scan(svc):
    run_scan()
    return drain_queue(svc)


def test_past_due_run_logs_that_it_is_late_and_scans(svc, emulators, caplog):
    run_scan(past_due=True)
    assert any("past due" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert len(scan_lines(caplog)) == 1


@pytest.mark.parametrize("hours_left", [23, 1])
def test_a_tenant_with_less_than_a_day_left_is_queued(svc, emulators, hours_left):
    out = provision(emulators, "late")
    latest = emulators.world.keyvault.secrets["nylas-entra-late"].latest
    assert latest.exp is not None
    now = emulators.world.clock.now().timestamp()
    emulators.world.clock.advance(seconds=latest.exp - now - hours_left * 3600)

    run_scan()

    assert [(q["tenant"], q["reason"]) for q in peek_requests(svc)] == [("late", "due")]
    assert out["clientId"]
