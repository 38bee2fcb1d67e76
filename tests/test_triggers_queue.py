"""The queue function: one tenant per message, under its lease. Busy and duplicates complete
quietly; a permanent failure alerts once; a transient one is retried by the host and, after
maxDequeueCount tries, the poison queue alerts."""

from __future__ import annotations

import logging

import azure.functions as func
import pytest

from blueprints.queue import MAX_DEQUEUE_COUNT, rotate_from_queue, rotation_poison
from core.errors import DependencyUnavailable
from core.ports import RotationRequest, Severity
from tests.support import drain_queue, our_credentials, provision, record_of


def message(tenant: str, reason: str = "on-demand", version: str = "", force: bool = False) -> func.QueueMessage:
    return func.QueueMessage(id=f"msg-{tenant}", body=RotationRequest(tenant, reason, version, force).to_json())


def test_a_forced_request_rotates_the_tenant_and_pushes_the_new_secret(svc, emulators, alerts):
    out = provision(emulators, "acme")

    rotate_from_queue(message("acme", force=True))

    record = record_of(svc, "acme")
    assert record.state == "current"
    assert record.previous_key_id == out["keyId"]
    assert [p.key_id for p in our_credentials(emulators, out["appObjectId"])] == [record.key_id]
    assert emulators.world.nylas_secret_works("nylas-acme")
    assert alerts.alerts == []


def test_a_request_for_a_tenant_that_is_not_due_changes_nothing(svc, emulators, caplog):
    provision(emulators, "early")
    emulators.world.reset_calls()

    rotate_from_queue(message("early", reason="due"))

    assert emulators.world.calls["graph.add_password"] == 0
    assert any(r.name == "queue" and r.getMessage() == "[early] rotation not-due" for r in caplog.records)


def test_busy_tenant_is_not_a_failure_and_sends_no_alert(svc, emulators, alerts, caplog):
    provision(emulators, "held")
    emulators.world.clock.advance(days=710)
    emulators.world.reset_calls()

    with svc.deps.leases.hold("held"):  # another run is rotating this tenant
        rotate_from_queue(message("held", reason="due"))  # returns: the host completes the message

    assert emulators.world.calls["graph.add_password"] == 0
    assert alerts.alerts == []
    assert any(r.name == "queue" and r.getMessage() == "[held] rotation busy" for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_a_request_for_an_unknown_tenant_alerts_once_as_a_permanent_failure(svc, emulators, alerts):
    rotate_from_queue(message("ghost", reason="due"))  # no exception: a retry cannot help

    [alert] = alerts.alerts
    assert (alert.kind, alert.tenant, alert.severity) == ("rotation-failed", "ghost", Severity.CRITICAL)
    assert "not provisioned" in alert.summary
    assert "rotate ghost" in alert.action
    assert alert.details["reason"] == "due"


def test_an_app_registration_deleted_behind_our_back_alerts_and_keeps_the_record(svc, emulators, alerts):
    out = provision(emulators, "gone")
    del emulators.world.graph.apps[out["appObjectId"]]

    rotate_from_queue(message("gone", force=True))

    assert alerts.kinds() == ["rotation-failed"]
    assert alerts.alerts[0].tenant == "gone"
    assert alerts.alerts[0].details["error"] == "dependency_rejected"
    assert record_of(svc, "gone").key_id == out["keyId"]


def test_nylas_refusing_the_new_secret_alerts_and_keeps_both_secrets(svc, emulators, alerts):
    out = provision(emulators, "refused")
    emulators.world.faults.inject("nylas.v3_patch_connector", status=400, times=1)

    rotate_from_queue(message("refused", force=True))

    assert alerts.kinds() == ["nylas-refused"]
    alert = alerts.alerts[0]
    assert alert.severity is Severity.CRITICAL
    assert alert.details["previous_key_id"] == out["keyId"]
    record = record_of(svc, "refused")
    assert (record.state, record.previous_key_id) == ("pending", out["keyId"])
    kept = {p.key_id for p in our_credentials(emulators, out["appObjectId"])}
    assert kept == {out["keyId"], record.key_id}  # nothing revoked while Nylas may hold either
    assert emulators.world.nylas_secret_works("nylas-refused")


def test_a_transient_failure_raises_so_the_host_retries_then_the_poison_queue_alerts(svc, emulators, alerts):
    provision(emulators, "flaky")
    emulators.world.faults.inject("nylas.v3_patch_connector", status=503, times=1000)
    with pytest.raises(DependencyUnavailable):
        rotate_from_queue(message("flaky", force=True))
    assert alerts.alerts == []
    svc.queue.send(RotationRequest("flaky", "on-demand", "", True))

    deliveries = drain_queue(svc)

    work = [d for d in deliveries if d.queue == svc.settings.rotation_queue]
    assert [d.dequeue_count for d in work] == list(range(1, MAX_DEQUEUE_COUNT + 1))
    assert {d.error for d in work} == {"NylasStateUnknown"}  # a 503 after the PATCH was sent: maybe landed
    [poisoned] = [d for d in deliveries if d.queue.endswith("-poison")]
    assert poisoned.request["tenant"] == "flaky" and not poisoned.error
    [alert] = alerts.alerts
    assert (alert.kind, alert.tenant, alert.severity) == ("poison-message", "flaky", Severity.CRITICAL)
    assert f"failed {MAX_DEQUEUE_COUNT} times" in alert.summary
    assert "rotate flaky" in alert.action

    # The dependency recovers: the next request resumes the pending rotation, no second credential.
    emulators.world.faults.clear()
    emulators.world.reset_calls()
    rotate_from_queue(message("flaky", reason="stuck"))
    assert record_of(svc, "flaky").state == "current"
    assert emulators.world.calls["graph.add_password"] == 0
    assert emulators.world.nylas_secret_works("nylas-flaky")


@pytest.mark.parametrize("body", [b"not json", b'{"reason":"due"}', b"\xff\xfe", b"[]"])
def test_an_unreadable_message_alerts_at_once_instead_of_five_retries(svc, emulators, alerts, body):
    rotate_from_queue(func.QueueMessage(id="m-bad", body=body))

    [alert] = alerts.alerts
    assert alert.kind == "poison-message"
    assert alert.tenant == "(unreadable message)"
    assert alert.details == {"message_id": "m-bad"}
    assert "POST /api/tenants/{tenant}/rotate" in alert.action


def test_an_unreadable_poison_message_still_alerts(svc, emulators, alerts):
    rotation_poison(func.QueueMessage(id="p-1", body=b"garbage"))

    [alert] = alerts.alerts
    assert (alert.kind, alert.tenant) == ("poison-message", "(unreadable message)")
