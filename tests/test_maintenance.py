"""The operator's use cases: the plan (what the next run would do, and why) and the cleanup of
orphaned credentials, against the emulators and Azurite (and the plan also from plain records)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.ports import SecretVersion
from core.record import MARKER, NylasTarget, RotationState, TenantRecord, secret_name
from devenv.scenario import add_foreign_credential, credentials, provision, record
from rotation.engine import is_due
from rotation.maintenance import Cleanup, Disposition, NextRun, Why, plan, window_days

NOW = datetime(2030, 1, 1, tzinfo=UTC)
STUCK_AFTER = timedelta(hours=6)
PREFIX = "nylas-entra-"


def props(
    tenant: str, state: RotationState, *, expires_in_days: float | None, since_hours: float = 48, **tags: str
) -> SecretVersion:
    rec = TenantRecord(
        tenant=tenant,
        app_object_id=f"obj-{tenant}",
        client_id=f"client-{tenant}",
        key_id=f"key-{tenant}",
        state=state,
        audience="multi-org",
        nylas_target=NylasTarget.V3_CONNECTOR,
        nylas_region="us",
        nylas_app_id=f"nylas-{tenant}",
        nylas_credential=f"{PREFIX}{tenant}--nylas",
        lifetime_days=730,
        rotate_before_days=30,
    )
    return SecretVersion(
        name=secret_name(PREFIX, tenant),
        version="v1",
        tags={**rec.to_tags(), **tags},
        expires_on=None if expires_in_days is None else NOW + timedelta(days=expires_in_days),
        enabled=True,
        created_on=NOW - timedelta(days=700),
        updated_on=NOW - timedelta(hours=since_hours),
    )


def decide(*secrets: SecretVersion) -> dict[str, tuple[NextRun, Why]]:
    result = plan(list(secrets), NOW, stuck_after=STUCK_AFTER, prefix=PREFIX)
    return {i.tenant: (i.next_run, i.why) for i in result.items}


def test_plan_says_what_the_next_run_does_for_every_state_and_why():
    decided = decide(
        props("fresh", RotationState.CURRENT, expires_in_days=400),
        props("due", RotationState.CURRENT, expires_in_days=10),
        props("gone", RotationState.CURRENT, expires_in_days=-3),
        props("restored", RotationState.RESTORED, expires_in_days=20),
        props("stuck", RotationState.PENDING, expires_in_days=20, since_hours=7),
        props("busy", RotationState.PENDING, expires_in_days=20, since_hours=1),
        props("waiting", RotationState.AWAITING_CONFIRMATION, expires_in_days=20),
    )

    assert decided == {
        "fresh": (NextRun.NOTHING, Why.NOT_DUE),
        "due": (NextRun.ROTATE, Why.DUE),
        "gone": (NextRun.ROTATE, Why.EXPIRED),
        "restored": (NextRun.ROTATE, Why.DUE),
        "stuck": (NextRun.RESUME, Why.STUCK),
        "busy": (NextRun.WAIT, Why.IN_PROGRESS),
        "waiting": (NextRun.REMIND, Why.AWAITING_CONFIRMATION),
    }


def test_plan_explains_when_a_tenant_enters_its_window():
    item = plan(
        [props("fresh", RotationState.CURRENT, expires_in_days=400)], NOW, stuck_after=STUCK_AFTER, prefix=PREFIX
    )
    only = item.items[0]
    assert only.days_left == 400 and only.window_days == 30
    assert "in 370 days" in only.explanation and only.due_on == NOW + timedelta(days=370)


@pytest.mark.parametrize("lifetime", [730, 40, 10])
def test_plan_window_is_the_window_the_engine_applies(lifetime):
    rec = TenantRecord.from_tags(
        props("x", RotationState.CURRENT, expires_in_days=1, **{"lifetime-days": str(lifetime)}).tags
    )
    assert rec is not None
    window = window_days(rec)
    assert is_due(rec, NOW + timedelta(days=window), NOW)
    assert not is_due(rec, NOW + timedelta(days=window, seconds=1), NOW)


def test_plan_skips_foreign_secrets_disabled_ones_and_copies_of_a_tenants_tags():
    copy = props("acme", RotationState.CURRENT, expires_in_days=1)
    copy = SecretVersion(**{**copy.__dict__, "name": "someone-elses-copy"})
    disabled = SecretVersion(**{**props("off", RotationState.CURRENT, expires_in_days=1).__dict__, "enabled": False})
    foreign = SecretVersion("other", "v1", {"team": "x"}, None, True, None, None)

    assert decide(copy, disabled, foreign) == {}


def test_a_dry_run_cleanup_reports_old_orphans_and_changes_nothing(svc, emulators):
    tenant = provision(svc, emulators, "tidy", "v3-connector")
    world = emulators.world
    old_orphan, _ = world.graph.add_password_direct(tenant.object_id, "nylas-entra-rotator 10575bad0001")
    add_foreign_credential(emulators, tenant, "ops break-glass")
    world.clock.advance(seconds=2 * 3600)
    young_orphan, _ = world.graph.add_password_direct(tenant.object_id, "nylas-entra-rotator 10575bad0002")
    world.reset_calls()

    report = cleanup(svc).run(world.clock.now(), apply=False)

    assert {c.key_id: c.disposition for c in report.credentials} == {
        old_orphan: Disposition.WOULD_REMOVE,
        young_orphan: Disposition.TOO_YOUNG,
    }
    assert writes(world) == []
    assert len(credentials(emulators, tenant)[0]) == 3


def test_cleanup_apply_removes_old_orphans_of_ours_only_and_keeps_the_recorded_and_foreign_ones(svc, emulators):
    tenant = provision(svc, emulators, "tidy", "v2-integration")
    _, rec = record(svc, tenant)
    world = emulators.world
    old_orphan, _ = world.graph.add_password_direct(tenant.object_id, "nylas-entra-rotator 10575bad0001")
    foreign = add_foreign_credential(emulators, tenant, "legacy integration")
    world.clock.advance(seconds=2 * 3600)
    young_orphan, _ = world.graph.add_password_direct(tenant.object_id, "nylas-entra-rotator 10575bad0002")

    report = cleanup(svc).run(world.clock.now(), apply=True)

    assert report.count(Disposition.REMOVED) == 1 and not report.failed
    ours, theirs = credentials(emulators, tenant)
    assert {p.key_id for p in ours} == {rec.key_id, young_orphan}
    assert old_orphan not in {p.key_id for p in ours}
    assert {p.key_id for p in theirs} == {foreign}


def test_cleanup_finds_tagged_apps_without_a_record_and_touches_them_only_when_asked(svc, emulators):
    world = emulators.world
    ghost = world.graph.create_app(world.identity.client_id, {"displayName": "Ghost", "tags": [MARKER, "tenant:ghost"]})
    orphan, _ = world.graph.add_password_direct(ghost.object_id, "nylas-entra-rotator 10575bad0003")
    world.clock.advance(seconds=2 * 3600)

    report = cleanup(svc).run(world.clock.now(), apply=True)
    assert [a.object_id for a in report.unrecorded_apps] == [ghost.object_id]
    assert [(c.key_id, c.disposition) for c in report.credentials] == [(orphan, Disposition.SKIPPED)]
    assert len(world.graph.apps[ghost.object_id].password_credentials) == 1

    report = cleanup(svc).run(world.clock.now(), apply=True, include_unrecorded_apps=True)
    assert [(c.key_id, c.disposition) for c in report.credentials] == [(orphan, Disposition.REMOVED)]
    assert world.graph.apps[ghost.object_id].password_credentials == []


def test_cleanup_apply_skips_a_tenant_whose_lease_is_held(svc, emulators):
    tenant = provision(svc, emulators, "held", "v3-connector")
    world = emulators.world
    world.graph.add_password_direct(tenant.object_id, "nylas-entra-rotator 10575bad0001")
    world.clock.advance(seconds=2 * 3600)

    with svc.deps.leases.hold(tenant.name):
        report = cleanup(svc).run(world.clock.now(), apply=True)

    assert [c.disposition for c in report.credentials] == [Disposition.BUSY]
    assert len(credentials(emulators, tenant)[0]) == 2


# --- helpers ----------------------------------------------------------------------------


def cleanup(svc) -> Cleanup:
    return Cleanup(
        vault=svc.deps.vault,
        graph=svc.deps.graph,
        directory=svc.graph,
        leases=svc.deps.leases,
        prefix=svc.settings.secret_prefix,
        grace=timedelta(minutes=svc.settings.orphan_grace_minutes),
    )


WRITE_WORDS = ("set", "update", "add", "remove", "patch", "create", "delete", "upsert", "purge", "recover")


def writes(world) -> list[str]:
    return [r for r in world.calls if any(w in r.split(".", 1)[1] for w in WRITE_WORDS)]
