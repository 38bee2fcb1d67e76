"""POST /api/tenants/{tenant}/rotate queues a rotation (202 and where to read status);
POST /api/tenants/{tenant}/rotation/confirm finishes a manual Nylas update, or answers 409."""

from __future__ import annotations

import pytest

from blueprints.http_api import confirm_rotation, get_tenant_http, rotate_tenant
from core.ports import Severity
from tests.support import (
    drain_queue,
    http_request,
    our_credentials,
    peek_requests,
    provision,
    record_of,
    response_json,
    run_nightly_scan,
)

BASE = "https://func.example/api/tenants"


def rotate(tenant: str):
    return rotate_tenant(http_request("POST", f"{BASE}/{tenant}/rotate", None, route_params={"tenant": tenant}))


def confirm(tenant: str):
    return confirm_rotation(
        http_request("POST", f"{BASE}/{tenant}/rotation/confirm", None, route_params={"tenant": tenant})
    )


def status(tenant: str):
    return get_tenant_http(http_request("GET", f"{BASE}/{tenant}", None, route_params={"tenant": tenant}))


def test_rotate_answers_202_with_where_to_read_status_and_queues_a_forced_rotation(svc, emulators):
    out = provision(emulators, "acme")
    version = emulators.world.keyvault.secrets["nylas-entra-acme"].latest.version
    emulators.world.reset_calls()

    response = rotate("acme")

    assert response.status_code == 202
    assert response.headers["Location"] == "/api/tenants/acme"
    body = response_json(response)
    assert body == {
        "tenant": "acme",
        "queued": True,
        "reason": "on-demand",
        "version": version,
        "status": "/api/tenants/acme",
    }
    assert peek_requests(svc) == [
        {"tenant": "acme", "reason": "on-demand", "version": version, "force": True, "paced": True}
    ]
    assert emulators.world.calls["graph.add_password"] == 0  # the work happens in the queue function

    drain_queue(svc)
    view = response_json(status("acme"))
    assert view["rotationState"] == "current"
    assert view["keyId"] != out["keyId"]
    assert emulators.world.nylas_secret_works("nylas-acme")


def test_rotate_twice_before_the_queue_runs_rotates_once(svc, emulators):
    provision(emulators, "twice")
    emulators.world.reset_calls()

    assert rotate("twice").status_code == 202
    assert rotate("twice").status_code == 202
    drain_queue(svc)

    assert emulators.world.calls["graph.add_password"] == 1


@pytest.mark.parametrize(
    ("tenant", "status_code", "code"), [("nobody", 404, "tenant_not_found"), ("Bad_Slug", 400, "invalid_request")]
)
def test_rotate_of_an_unknown_or_invalid_tenant_says_what_is_wrong(svc, emulators, tenant, status_code, code):
    response = rotate(tenant)

    assert response.status_code == status_code
    error = response_json(response)["error"]
    assert (error["code"], error["field"]) == (code, "tenant")
    assert error["message"]
    assert peek_requests(svc) == []


def test_confirm_with_nothing_awaiting_answers_409_with_a_json_error(svc, emulators):
    provision(emulators, "auto")  # v3 connector: nothing is ever awaiting

    response = confirm("auto")

    assert response.status_code == 409
    assert response.mimetype == "application/json"
    assert response_json(response) == {
        "error": {
            "code": "nothing_to_confirm",
            "message": "tenant auto has no rotation awaiting confirmation (state current)",
            "field": "tenant",
        }
    }


def test_confirm_of_an_unknown_tenant_answers_404(svc, emulators):
    response = confirm("nobody")

    assert response.status_code == 404
    assert set(response_json(response)["error"]) >= {"code", "message", "field"}


def test_manual_target_alerts_reminds_escalates_and_confirm_revokes_the_old_secret(svc, emulators, alerts):
    out = provision(emulators, "hand", "manual")
    assert alerts.kinds() == ["manual-action"]
    first = confirm("hand")
    assert first.status_code == 200, first.get_body()
    assert response_json(first)["result"] == "rotated"
    assert confirm("hand").status_code == 409  # a second confirm has nothing to do

    # 710 days on, the nightly scan finds it due: a new secret, parked for a person to paste.
    emulators.world.clock.advance(days=710)
    run_nightly_scan()
    drain_queue(svc)
    record = record_of(svc, "hand")
    assert record.state == "awaiting-confirmation"
    assert record.previous_key_id == out["keyId"]
    action = alerts.alerts[-1]
    assert (action.kind, action.severity) == ("manual-action", Severity.WARNING)
    assert "/api/tenants/hand/rotation/confirm" in action.action
    assert action.details["key_vault_secret"] == "nylas-entra-hand"
    assert action.details["old_secret_days_left"] == "19"

    # Every night until someone confirms: a reminder, then an escalation in the last week.
    emulators.world.clock.advance(days=10)
    run_nightly_scan()
    drain_queue(svc)
    assert (alerts.alerts[-1].kind, alerts.alerts[-1].severity) == ("manual-reminder", Severity.WARNING)
    emulators.world.clock.advance(days=5)
    run_nightly_scan()
    drain_queue(svc)
    escalation = alerts.alerts[-1]
    assert (escalation.kind, escalation.severity) == ("manual-escalation", Severity.CRITICAL)
    assert escalation.details["old_secret_days_left"] == "4"
    assert len(our_credentials(emulators, out["appObjectId"])) == 2  # both live until confirmed

    response = confirm("hand")

    assert response.status_code == 200
    body = response_json(response)
    assert body == {"tenant": "hand", "result": "rotated", "keyId": record.key_id, "revokedKeyId": out["keyId"]}
    assert [p.key_id for p in our_credentials(emulators, out["appObjectId"])] == [record.key_id]
    assert record_of(svc, "hand").state == "current"
    run_nightly_scan()
    assert peek_requests(svc) == []
