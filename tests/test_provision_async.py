"""POST /api/tenants answers within the HTTP limit: it makes the tenant exist and answers 202; the
queue proves the secret (however long Entra takes to accept it), pushes it to Nylas and finishes.

Azure ends an HTTP request after 230 s whatever functionTimeout says (world-facts §6, [F1]), and
Entra publishes no bound on how long a new secret takes to work: nothing that waits for it may run
inside the request."""

from __future__ import annotations

import pytest

from blueprints.http_api import get_tenant_http, provision_tenant
from bootstrap import use_services
from devenv.wiring import local_services
from tests.support import drain_queue, http_request, peek_requests, register_nylas, response_json, tenant_body

URL = "https://func.example/api/tenants"
PROPAGATION_SECONDS = 200.0  # within the engine's 300 s budget, far beyond what a request may wait


def post(body):
    return provision_tenant(http_request("POST", URL, body))


def get(tenant):
    return get_tenant_http(http_request("GET", f"{URL}/{tenant}", route_params={"tenant": tenant}))


def nylas_writes(emulators) -> int:
    return sum(n for route, n in emulators.world.calls.items() if route.startswith("nylas.") and "get" not in route)


@pytest.fixture
def slow_entra(emulators, env, alerts):
    svc = local_services(emulators, {**env, "VERIFY_BUDGET_SECONDS": "300"}, alerts)
    use_services(svc)
    emulators.world.entra.propagation_delay = PROPAGATION_SECONDS
    return svc


@pytest.mark.parametrize("target", ["v3-credential", "v2-integration"])
def test_post_answers_202_with_no_verification_wait_and_the_queue_makes_the_tenant_current(
    slow_entra, emulators, target
):
    svc = slow_entra
    body = tenant_body("slow", target)
    register_nylas(emulators, body)
    started = emulators.world.clock.offset_seconds
    emulators.world.reset_calls()

    response = post(body)

    # Every wait the service makes (verification, replication, retries) moves the world's clock
    # forward: an unmoved offset means the request waited for nothing.
    assert response.status_code == 202, response.get_body()
    assert emulators.world.clock.offset_seconds == started
    assert response.headers["Location"] == "/api/tenants/slow"
    accepted = response_json(response)
    assert accepted["rotationState"] == "pending" and accepted["status"] == "/api/tenants/slow"
    assert nylas_writes(emulators) == 0  # nothing pushed before it is proven
    assert [r["tenant"] for r in peek_requests(svc)] == ["slow"]

    # Asked again while it runs: the same 202, not "busy", and nothing new written in Graph.
    app_passwords = len(emulators.world.graph.apps[accepted["appObjectId"]].password_credentials)
    again = post(body)
    assert again.status_code == 202, again.get_body()
    assert response_json(again)["keyId"] == accepted["keyId"]
    assert len(emulators.world.graph.apps[accepted["appObjectId"]].password_credentials) == app_passwords
    assert response_json(get("slow"))["rotationState"] == "pending"

    drain_queue(svc)

    settled = response_json(get("slow"))
    assert settled["rotationState"] == "current", settled
    assert emulators.world.clock.offset_seconds - started >= PROPAGATION_SECONDS  # it waited, in the queue
    if target == "v3-credential":
        held = emulators.world.nylas.credential(body["nylas"]["appId"], settled["nylas"]["credentialId"])
        assert held is not None and held[0] == accepted["clientId"]
    else:
        assert emulators.world.nylas_secret_works(body["nylas"]["appId"])


def test_a_settled_tenant_posted_again_answers_200_and_queues_nothing(slow_entra, emulators):
    svc = slow_entra
    emulators.world.entra.propagation_delay = 0.0
    body = tenant_body("done", "v3-connector")
    register_nylas(emulators, body)
    assert post(body).status_code == 202
    drain_queue(svc)

    again = post(body)

    assert again.status_code == 200, again.get_body()
    assert response_json(again)["rotationState"] == "current"
    assert peek_requests(svc) == []


def test_a_lost_follow_up_is_queued_again_by_the_next_post(slow_entra, emulators):
    """The request crashed between storing the first secret and queueing its follow-up (or the
    message was lost): the tenant is pending with nothing to move it. The same POST queues it again."""
    svc = slow_entra
    emulators.world.entra.propagation_delay = 0.0
    body = tenant_body("lost", "v3-connector")
    register_nylas(emulators, body)
    assert post(body).status_code == 202
    svc.queue.client.clear_messages()  # the follow-up is gone

    again = post(body)
    drain_queue(svc)

    assert again.status_code == 202
    assert response_json(get("lost"))["rotationState"] == "current"
    assert emulators.world.nylas_secret_works(body["nylas"]["appId"])


def test_a_duplicate_follow_up_finds_the_tenant_settled_and_rotates_nothing(slow_entra, emulators):
    """Two POSTs while pending queue two follow-ups. The first finishes provisioning; the second
    must not treat the finished tenant as a rotation to run, even when its one-day secret is already
    inside the rotation window (a nightly scan or an event decides that, not a duplicate)."""
    svc = slow_entra
    emulators.world.entra.propagation_delay = 0.0
    body = {**tenant_body("brief", "v3-connector"), "secretLifetimeDays": 1}
    register_nylas(emulators, body)
    accepted = response_json(post(body))
    assert post(body).status_code == 202
    assert [r["tenant"] for r in peek_requests(svc)] == ["brief", "brief"]

    drain_queue(svc)

    # Judged from the emulated world: one secret on the app, one version in Key Vault, the first.
    app = emulators.world.graph.apps[accepted["appObjectId"]]
    assert [p.key_id for p in app.password_credentials] == [accepted["keyId"]]
    assert len(emulators.world.keyvault.secrets["nylas-entra-brief"].versions) == 1
    assert response_json(get("brief"))["rotationState"] == "current"
