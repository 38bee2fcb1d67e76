"""Fault injection (in-process and through the control API) as seen by real clients."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import time

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from devenv.mailbox import sign_in
from emulators.world import NYLAS_V3_CALLBACKS
from tests.contract.contract_support import secret_client

US_CALLBACK = NYLAS_V3_CALLBACKS["us"]


def nylas_patch(emulators, client_secret: str = "s") -> requests.Response:
    return requests.patch(
        f"{emulators.urls['nylas']}/v3/connectors/microsoft",
        json={"settings": {"client_id": "c", "client_secret": client_secret}},
        headers={"Authorization": "Bearer key-1"},
        verify=emulators.ca_path,
        timeout=10,
    )


def control(emulators, method: str, path: str, json=None) -> requests.Response:
    return requests.request(method, emulators.urls["control"] + path, json=json, verify=emulators.ca_path, timeout=10)


@pytest.fixture
def nylas_app(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1")
    emulators.world.nylas.add_v3_connector("app-1", "c", "s0")
    return "app-1"


def test_status_fault_answers_in_the_service_format_then_clears(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", status=503, error_code="service_unavailable")
    first = nylas_patch(emulators)
    assert first.status_code == 503 and first.json()["error"]["type"] == "service_unavailable"
    assert emulators.world.nylas.current(nylas_app) == ("c", "s0")  # phase=before: not processed
    assert nylas_patch(emulators).status_code == 200
    assert emulators.world.calls["nylas.v3_patch_connector"] == 2


def test_times_counts_down(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", status=500, times=2)
    assert [nylas_patch(emulators).status_code for _ in range(3)] == [500, 500, 200]


def test_retry_after_header(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", status=429, retry_after=1.5)
    resp = nylas_patch(emulators)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1.5"


def test_latency_delays_the_answer(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", latency=0.3)
    started = time.monotonic()
    assert nylas_patch(emulators).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_latency_all(emulators, nylas_app):
    emulators.world.latency_all(0.1)
    started = time.monotonic()
    nylas_patch(emulators)
    assert time.monotonic() - started >= 0.1
    emulators.world.latency_all(0)


def test_drop_closes_the_connection_without_an_answer(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", drop=True)
    with pytest.raises(requests.ConnectionError):
        nylas_patch(emulators)
    assert len(emulators.world.nylas.history(nylas_app)) == 1  # only the connector's creation
    assert nylas_patch(emulators).status_code == 200


def test_phase_after_changes_state_then_fails(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", status=500, phase="after")
    assert nylas_patch(emulators, "s1").status_code == 500
    assert emulators.world.nylas.current(nylas_app) == ("c", "s1")  # processed although the caller saw 500


def test_phase_after_drop_changes_state_then_hangs_up(emulators, nylas_app):
    emulators.world.faults.inject("nylas.v3_patch_connector", drop=True, phase="after")
    with pytest.raises(requests.ConnectionError):
        nylas_patch(emulators, "s2")
    assert emulators.world.nylas.current(nylas_app) == ("c", "s2")


def test_wildcard_route_hits_every_service_but_not_control(emulators, nylas_app):
    emulators.world.faults.inject("*", status=503, times=2)
    assert control(emulators, "GET", "/clock").status_code == 200
    assert nylas_patch(emulators).status_code == 503
    resp = requests.get(emulators.urls["graph"] + "/applications", verify=emulators.ca_path)
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "ServiceUnavailable"


def test_kill_pid_kills_the_caller_and_drops(emulators, nylas_app):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        emulators.world.faults.inject("nylas.v3_patch_connector", kill_pid=victim.pid)
        with pytest.raises(requests.ConnectionError):
            nylas_patch(emulators)
        assert victim.wait(timeout=5) == -9
    finally:
        victim.kill()


def test_html_fault_answers_a_gateway_page_instead_of_graph_json(emulators):
    from kiota_abstractions.api_error import APIError
    from msgraph.generated.models.application import Application
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    from tests.contract.contract_support import with_graph

    emulators.world.faults.inject("graph.list_applications", html=True)
    resp = requests.get(emulators.urls["graph"] + "/applications", verify=emulators.ca_path, timeout=10)
    assert resp.status_code == 502 and resp.headers["Content-Type"] == "text/html"
    assert resp.text.lstrip().startswith("<html>") and "502 Bad Gateway" in resp.text
    assert "request-id" not in resp.headers  # the gateway answered, not Graph
    emulators.world.faults.inject("graph.create_application", html=True)
    with pytest.raises(APIError) as err:
        with_graph(emulators, lambda c: c.applications.post(Application(display_name="x")))
    assert not isinstance(err.value, ODataError) and err.value.response_status_code == 502
    assert emulators.world.graph.apps.keys() == {emulators.world.identity.object_id}  # not processed


def test_html_fault_keeps_its_status_and_works_after_processing(emulators):
    emulators.world.faults.inject("graph.create_application", html=True, status=504, phase="after")
    token = _graph_token(emulators)
    resp = requests.post(
        emulators.urls["graph"] + "/applications",
        json={"displayName": "made anyway"},
        headers={"Authorization": f"Bearer {token}"},
        verify=emulators.ca_path,
        timeout=10,
    )
    assert resp.status_code == 504 and resp.headers["Content-Type"] == "text/html" and "504" in resp.text
    assert any(a.display_name == "made anyway" for a in emulators.world.graph.apps.values())


def _graph_token(emulators) -> str:
    from tests.contract.contract_support import GRAPH_SCOPE, credential

    return credential(emulators).get_token(GRAPH_SCOPE).token


def test_secret_client_gives_up_on_repeated_drops(emulators):
    client = secret_client(emulators, retry_total=1, retry_backoff_factor=0.01)
    client.set_secret("x", "v")
    emulators.world.faults.inject("keyvault.get_secret", drop=True, times=2)
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        client.get_secret("x")
    assert emulators.world.calls["keyvault.get_secret"] == 2


def test_secret_client_surfaces_a_non_retryable_fault(emulators):
    client = secret_client(emulators)
    client.set_secret("x", "v")
    emulators.world.faults.inject("keyvault.get_secret", status=400, error_code="BadParameter")
    with pytest.raises(HttpResponseError) as err:
        client.get_secret("x")
    assert err.value.status_code == 400 and err.value.error.code == "BadParameter"


def test_call_log_has_no_bodies_or_secrets(emulators, nylas_app):
    nylas_patch(emulators, "very-secret-value")
    assert emulators.world.call_log == [("nylas.v3_patch_connector", "PATCH", "/v3/connectors/microsoft", 200)]
    assert "very-secret-value" not in str(emulators.world.snapshot())


# ------------------------------------------------------------------ control API


def test_control_faults_round_trip(emulators, nylas_app):
    assert (
        control(emulators, "POST", "/faults", {"route": "nylas.v3_patch_connector", "status": 502}).status_code == 201
    )
    assert control(emulators, "GET", "/faults").json()["faults"][0]["status"] == 502
    assert nylas_patch(emulators).status_code == 502
    control(emulators, "POST", "/faults", {"route": "nylas.v3_patch_connector", "status": 502})
    assert control(emulators, "DELETE", "/faults").status_code == 204
    assert nylas_patch(emulators).status_code == 200
    assert control(emulators, "POST", "/faults", {"route": "x", "bogus": 1}).status_code == 400
    made = control(emulators, "POST", "/faults", {"route": "graph.list_applications", "html": True})
    assert made.status_code == 201 and made.json()["faults"] == [
        {
            "route": "graph.list_applications",
            "status": 502,
            "retry_after": None,
            "times": 1,
            "latency": 0.0,
            "drop": False,
            "phase": "before",
            "error_code": None,
            "kill_pid": None,
            "skip": 0,
            "html": True,
        }
    ]
    resp = requests.get(emulators.urls["graph"] + "/applications", verify=emulators.ca_path, timeout=10)
    assert resp.status_code == 502 and resp.headers["Content-Type"] == "text/html"


def test_control_clock(emulators):
    before = control(emulators, "GET", "/clock").json()["offset_seconds"]
    after = control(emulators, "POST", "/clock", {"advance_days": 2, "advance_seconds": 5}).json()
    assert after["offset_seconds"] - before == pytest.approx(2 * 86400 + 5)
    assert emulators.world.clock.offset_seconds == pytest.approx(2 * 86400 + 5)


def test_control_calls_and_reset(emulators, nylas_app):
    nylas_patch(emulators)
    calls = control(emulators, "GET", "/calls").json()
    assert calls["calls"]["nylas.v3_patch_connector"] == 1
    assert ["nylas.v3_patch_connector", "PATCH", "/v3/connectors/microsoft", 200] in calls["log"]
    control(emulators, "POST", "/calls/reset")
    assert "nylas.v3_patch_connector" not in emulators.world.calls


def test_control_nylas_apps_policy_delays_and_snapshot(emulators):
    assert (
        control(
            emulators, "POST", "/nylas/apps", {"version": "v3", "app_id": "a3", "api_key": "k3", "region": "eu"}
        ).status_code
        == 201
    )
    basic = {"version": "v2", "client_id": "c2", "client_secret": "s2"}
    assert control(emulators, "POST", "/nylas/apps", basic).status_code == 201
    assert emulators.world.nylas.apps["a3"].region == "eu" and emulators.world.nylas.apps["c2"].kind == "v2"
    policy = control(emulators, "POST", "/graph/policy", {"lifetime_max_days": 180}).json()
    assert policy == {"lifetime_max_days": 180, "id": emulators.world.graph.tenant_policy_id}
    control(emulators, "POST", "/delays", {"graph_replication": 5, "entra_propagation": 10})
    assert emulators.world.graph.lifetime_policy_max_days == 180
    assert emulators.world.graph.replication_delay == 5 and emulators.world.entra.propagation_delay == 10
    snap = control(emulators, "GET", "/snapshot").json()
    assert snap["graph"]["lifetime_policy_max_days"] == 180 and set(snap["nylas"]) == {"a3", "c2"}
    assert "k3" not in str(snap) and emulators.world.identity.client_secret not in str(snap)
    v2_auth = base64.b64encode(b"c2:s2").decode()
    resp = requests.patch(
        f"{emulators.urls['nylas']}/connect/integrations/microsoft",
        json={"settings": {"client_id": "x", "client_secret": "y"}},
        headers={"Authorization": f"Basic {v2_auth}"},
        verify=emulators.ca_path,
        timeout=10,
    )
    assert resp.status_code == 200
    state = control(emulators, "GET", "/nylas/apps/c2").json()
    assert state["client_id"] == "x" and state["secret_works"] is False and len(state["history"]) == 1


def test_control_reset_keeps_the_service_identity(emulators, nylas_app):
    client = secret_client(emulators)
    client.set_secret("gone-after-reset", "v")
    assert control(emulators, "POST", "/reset").status_code == 204
    assert emulators.world.nylas.apps == {} and emulators.world.keyvault.secrets == {}
    client.set_secret("works-after-reset", "v")  # same identity, same cached token


def test_control_nylas_connector_users_grant_refresh_and_write_quota(emulators):
    world = emulators.world
    app = world.graph.create_app(
        world.identity.client_id,
        {"displayName": "ctl", "signInAudience": "AzureADMultipleOrgs", "web": {"redirectUris": [US_CALLBACK]}},
    )
    _, secret = world.graph.add_password_direct(app.object_id, "rotator")
    control(emulators, "POST", "/nylas/apps", {"version": "v3", "app_id": "ctl", "api_key": "ctl-key"})
    made = control(emulators, "POST", "/nylas/apps/ctl/connector", {"client_id": app.app_id, "client_secret": secret})
    assert made.status_code == 201 and made.json()["active_credential_id"]
    again = {"client_id": "x", "client_secret": "y"}
    assert control(emulators, "POST", "/nylas/apps/ctl/connector", again).status_code == 409
    user = control(emulators, "POST", "/entra/users", {"email": "ann@fabrikam.example", "home_tenant": "t-fab"})
    assert user.status_code == 201 and world.entra.users["ann@fabrikam.example"].home_tenant == "t-fab"
    assert control(emulators, "POST", "/entra/users", {"email": "x@y.example", "kind": "robot"}).status_code == 400
    grant_id = sign_in(emulators, nylas_app_id="ctl", email="bob@contoso.com")
    state = control(emulators, "GET", "/nylas/apps/ctl").json()
    assert [g["id"] for g in state["grants"]] == [grant_id] and len(state["credentials"]) == 1
    assert secret not in str(state)
    refreshed = control(emulators, "POST", f"/nylas/apps/ctl/grants/{grant_id}/refresh").json()
    assert refreshed == {"ok": True, "code": ""}
    quota = control(emulators, "POST", "/graph/write_quota", {"limit": 5, "window_seconds": 10}).json()
    assert quota == {"limit": 5, "window_seconds": 10.0, "writes": 0, "throttled": 0}
    assert control(emulators, "POST", "/graph/write_quota", {"limit": None}).json()["limit"] is None


def test_control_switches(emulators):
    world = emulators.world
    on = {"keyvault_empty_pages": True, "graph_sp_denied_while_replicating": True}
    assert control(emulators, "POST", "/switches", on).json() == on
    assert world.keyvault.empty_pages and world.graph.sp_denied_while_replicating
    assert control(emulators, "POST", "/switches", {"nope": True}).status_code == 400
    control(emulators, "POST", "/reset")
    assert not world.keyvault.empty_pages and not world.graph.sp_denied_while_replicating


def test_control_foreign_app_with_or_without_service_principal(emulators):
    world = emulators.world
    with_sp = control(emulators, "POST", "/graph/foreign_apps", {"display_name": "a"}).json()
    without = control(emulators, "POST", "/graph/foreign_apps", {"display_name": "b", "service_principal": False})
    assert world.graph.sp_by_app_id(with_sp["appId"]) is not None
    assert world.graph.sp_by_app_id(without.json()["appId"]) is None


def test_a_kill_after_the_write_lands_applies_the_request_then_kills_and_drops(emulators):
    import subprocess
    import sys

    import requests

    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    emulators.world.nylas.add_v2_app("kill-app", "kill-secret-value-0001")
    emulators.world.faults.inject("nylas.v2_patch_integration", kill_pid=victim.pid, phase="after")
    with contextlib.suppress(requests.ConnectionError):
        requests.patch(
            f"{emulators.env()['NYLAS_V2_API_US']}/connect/integrations/microsoft",
            json={"settings": {"client_id": "c1", "client_secret": "s1-landed-0001"}},
            auth=("kill-app", "kill-secret-value-0001"),
            verify=emulators.ca_path,
            timeout=10,
        )
    assert victim.wait(timeout=10) == -9
    assert emulators.world.nylas.current("kill-app") == ("c1", "s1-landed-0001")  # the write landed
