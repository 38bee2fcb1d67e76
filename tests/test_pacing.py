"""Pacing Graph writes to apps that sign in personal accounts (60 a minute, world-facts §4c):
the nightly fan-out spaces their rotations, and a 429 from the quota slows the whole pace.

Real Azurite (the queue's visibility delays, the pace blob with ETag checks), the real queue
function, and the Graph emulator's own quota with its x-ms-throttle-scope header."""

from __future__ import annotations

import uuid

import azure.functions as func
import pytest

from blueprints.queue import rotate_from_queue
from bootstrap import use_services
from core.ports import RotationRequest
from devenv.scenario import provision, record
from devenv.wiring import local_services
from rotation.operations import scan_and_queue
from rotation.pacing import interval_seconds
from tests.support import peek_requests, queue_client


def deliver(request: RotationRequest) -> None:
    rotate_from_queue(func.QueueMessage(id=uuid.uuid4().hex, body=request.to_json()))


def invisible(svc) -> list[dict[str, object]]:
    """Messages queued with a visibility delay: waiting, not yet visible (peek cannot see them)."""
    count = queue_client(svc).get_queue_properties().approximate_message_count
    return [{}] * (count - len(peek_requests(svc)))


def test_the_nightly_fan_out_gives_each_personal_tenant_its_own_slot_and_others_none(svc, emulators):
    personal = [provision(svc, emulators, f"p{i}", "v3-credential", nylas_app="shared") for i in range(3)]
    work = provision(svc, emulators, "w", "v2-integration")
    emulators.world.clock.advance(days=710)
    now = emulators.world.clock.now().timestamp()

    report = scan_and_queue(svc)

    assert {i.tenant for i in report.items if i.paced} == {t.name for t in personal}
    assert [i.tenant for i in report.items if not i.paced] == [work.name]
    visible = [r["tenant"] for r in peek_requests(svc)]  # the first slot is now; the others wait for theirs
    assert "w" in visible and len(visible) == 2
    assert len(invisible(svc)) == 2
    state = svc.pace.reserve(1, 0.0)[0]  # the pace moved on by three intervals
    assert state == pytest.approx(now + 3 * interval_seconds(svc.settings), abs=2.0)


def test_a_paced_request_without_a_slot_takes_one_and_waits_for_it(svc, emulators):
    tenant = provision(svc, emulators, "acme", "v3-credential")
    emulators.world.clock.advance(days=710)
    svc.pace.reserve(1, 30.0)  # someone holds the next 30 s
    emulators.world.reset_calls()

    deliver(RotationRequest(tenant.name, "near-expiry-event", paced=True))

    assert record(svc, tenant)[1].state.value == "current"
    assert emulators.world.calls["graph.add_password"] == 0  # not yet: it waits for its slot
    assert len(invisible(svc)) == 1


@pytest.fixture
def no_sdk_retries(svc, emulators, env, alerts):
    """The service with Graph's SDK retries off, so the quota's 429 reaches the queue function at
    once (with them, kiota would first sleep through Retry-After itself)."""
    services = local_services(emulators, {**env, "HTTP_MAX_RETRIES": "0"}, alerts)
    use_services(services)
    try:
        yield services
    finally:
        use_services(svc)
        services.graph.close()


def test_a_429_from_the_write_quota_pauses_every_paced_start_and_respaces_them(svc, emulators, no_sdk_retries):
    names = ["a", "b", "c"]
    tenants = [provision(svc, emulators, n, "v3-credential", nylas_app="shared") for n in names]
    emulators.world.clock.advance(days=710)
    world = emulators.world
    world.graph.personal_writes.clear()
    world.graph.personal_write_limit = 2  # room for exactly one rotation this minute
    now = world.clock.now().timestamp()
    keys = {t.name: record(svc, t)[1].key_id for t in tenants}
    slots = no_sdk_retries.pace.reserve(3, 0.0)  # all three "due now", as a storm would be

    deliver(RotationRequest("a", "due", paced=True, slot=slots[0]))
    deliver(RotationRequest("b", "due", paced=True, slot=slots[1]))  # meets the quota's 429
    deliver(RotationRequest("c", "due", paced=True, slot=slots[2]))  # slot inside the pause: re-slotted

    assert record(no_sdk_retries, tenants[0])[1].key_id != keys["a"]  # a rotated within the minute
    assert world.graph.throttled_count == 1  # one 429, not a storm
    paused = no_sdk_retries.pace.paused_until()
    assert paused > now + 1
    for tenant in tenants[1:]:
        _, rec = record(no_sdk_retries, tenant)
        assert (rec.state.value, rec.key_id) == ("current", keys[tenant.name])  # untouched: no write landed
    assert len(invisible(no_sdk_retries)) == 2  # b and c wait out the pause
    # b took the first slot after the pause, c the next one: the next free slot is two intervals on.
    (next_free,) = no_sdk_retries.pace.reserve(1, 0.0)
    assert next_free == pytest.approx(paused + 2 * interval_seconds(no_sdk_retries.settings), abs=0.5)
