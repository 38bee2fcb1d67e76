"""Graph rules for apps personal Microsoft accounts may sign in to (AzureADandPersonalMicrosoftAccount):
token version 2, the smaller limits, two passwords at most and the write quota [E1][E2][G2][G7][G11]."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from msgraph.generated.models.api_application import ApiApplication
from msgraph.generated.models.application import Application

from tests.contract.contract_support import GRAPH_SCOPE, credential, with_graph

PERSONAL = "AzureADandPersonalMicrosoftAccount"
CALLBACK = "https://api.us.nylas.com/v3/connect/callback"
MAIL_READ = "570282fd-fa5c-430d-a7fd-fc8dc98a9dca"


@pytest.fixture
def graph(emulators):
    token = credential(emulators).get_token(GRAPH_SCOPE).token

    def call(method: str, path: str, json=None) -> requests.Response:
        return requests.request(
            method,
            emulators.urls["graph"] + path,
            json=json,
            headers={"Authorization": f"Bearer {token}"},
            verify=emulators.ca_path,
            timeout=10,
        )

    return call


def personal(**extra):
    return {
        "displayName": "nylas personal",
        "signInAudience": PERSONAL,
        "api": {"requestedAccessTokenVersion": 2},
        "web": {"redirectUris": [CALLBACK]},
        **extra,
    }


def org(**extra):
    return {"displayName": "nylas org", "signInAudience": "AzureADMultipleOrgs", **extra}


def refused(resp: requests.Response) -> tuple[int, str, str]:
    error = resp.json()["error"]
    return resp.status_code, error["code"], error["message"]


def graph_scopes(n: int) -> list[dict[str, Any]]:
    return [{"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": perms(n)}]


def perms(n: int) -> list[dict[str, Any]]:
    return [{"id": f"00000000-0000-0000-0000-{i:012d}", "type": "Scope"} for i in range(n)]


# ------------------------------------------------------------------ validation [E1][E2][G2]


def test_personal_app_needs_access_token_version_2(graph):
    body = personal()
    del body["api"]
    status, code, message = refused(graph("POST", "/applications", body))
    assert (status, code) == (400, "Request_BadRequest") and "requestedAccessTokenVersion" in message
    bad = personal(api={"requestedAccessTokenVersion": 1})
    assert graph("POST", "/applications", bad).status_code == 400
    assert graph("POST", "/applications", personal()).status_code == 201
    assert graph("POST", "/applications", org()).status_code == 201  # org apps may keep version 1/null


def test_switching_an_org_app_to_personal_checks_the_rules_on_the_result(graph):
    app = graph("POST", "/applications", org()).json()
    resp = graph("PATCH", f"/applications/{app['id']}", {"signInAudience": PERSONAL})
    assert resp.status_code == 400 and "requestedAccessTokenVersion" in resp.json()["error"]["message"]
    both = {"signInAudience": PERSONAL, "api": {"requestedAccessTokenVersion": 2}}
    assert graph("PATCH", f"/applications/{app['id']}", both).status_code == 204
    # Once personal, a PATCH that breaks a rule is refused too.
    resp = graph("PATCH", f"/applications/{app['id']}", {"api": {"requestedAccessTokenVersion": None}})
    assert resp.status_code == 400


def test_personal_app_display_name_is_at_most_90_characters(graph):
    assert graph("POST", "/applications", personal(displayName="x" * 90)).status_code == 201
    status, code, message = refused(graph("POST", "/applications", personal(displayName="x" * 91)))
    assert (status, code) == (400, "Request_BadRequest") and "'displayName'" in message
    assert graph("POST", "/applications", org(displayName="x" * 120)).status_code == 201
    assert graph("POST", "/applications", org(displayName="x" * 121)).status_code == 400


def test_personal_app_has_at_most_30_permissions_per_resource(graph):
    assert graph("POST", "/applications", personal(requiredResourceAccess=graph_scopes(30))).status_code == 201
    status, _, message = refused(graph("POST", "/applications", personal(requiredResourceAccess=graph_scopes(31))))
    assert status == 400 and "'requiredResourceAccess'" in message
    assert graph("POST", "/applications", org(requiredResourceAccess=graph_scopes(31))).status_code == 201


def test_personal_app_has_at_most_100_redirect_uris(graph):
    uris = [f"https://app{i}.example/cb" for i in range(101)]
    assert graph("POST", "/applications", personal(web={"redirectUris": uris[:100]})).status_code == 201
    status, _, message = refused(graph("POST", "/applications", personal(web={"redirectUris": uris})))
    assert status == 400 and "'web'" in message
    assert graph("POST", "/applications", org(web={"redirectUris": uris})).status_code == 201


def test_personal_app_redirect_uris_have_no_query_string(graph):
    with_query = personal(web={"redirectUris": [CALLBACK + "?region=us"]})
    assert graph("POST", "/applications", with_query).status_code == 400
    assert graph("POST", "/applications", org(web={"redirectUris": [CALLBACK + "?region=us"]})).status_code == 201


def test_msgraph_sdk_creates_a_personal_app_with_token_version_2(emulators):
    async def body(client):
        return await client.applications.post(
            Application(
                display_name="sdk personal",
                sign_in_audience=PERSONAL,
                api=ApiApplication(requested_access_token_version=2),
            )
        )

    app = with_graph(emulators, body)
    assert emulators.world.graph.apps[app.id].data["api"]["requestedAccessTokenVersion"] == 2


# ------------------------------------------------------------------ two passwords [E1][G7]


def test_third_password_on_a_personal_app_is_too_many_app_passwords(graph):
    app = graph("POST", "/applications", personal()).json()
    for _ in range(2):
        assert graph("POST", f"/applications/{app['id']}/addPassword", {}).status_code == 200
    resp = graph("POST", f"/applications/{app['id']}/addPassword", {"passwordCredential": {"displayName": "3"}})
    error = resp.json()["error"]
    assert resp.status_code == 400
    assert {k: error[k] for k in ("code", "message", "details")} == {
        "code": "TooManyAppPasswords",
        "message": "Not allowed to add 3 passwords. You can only add a maximum of 2 passwords.",
        "details": [{"target": "passwordCredentials", "code": "TooManyAppPasswords"}],
    }
    assert len(graph("GET", f"/applications/{app['id']}").json()["passwordCredentials"]) == 2
    # Remove the old secret first: then the next one fits.
    old = graph("GET", f"/applications/{app['id']}").json()["passwordCredentials"][0]["keyId"]
    assert graph("POST", f"/applications/{app['id']}/removePassword", {"keyId": old}).status_code == 204
    assert graph("POST", f"/applications/{app['id']}/addPassword", {}).status_code == 200


def test_org_app_takes_a_third_password(graph):
    app = graph("POST", "/applications", org()).json()
    assert [graph("POST", f"/applications/{app['id']}/addPassword", {}).status_code for _ in range(3)] == [200] * 3


def test_switching_to_personal_with_three_passwords_is_refused(graph):
    app = graph("POST", "/applications", org()).json()
    for _ in range(3):
        graph("POST", f"/applications/{app['id']}/addPassword", {})
    both = {"signInAudience": PERSONAL, "api": {"requestedAccessTokenVersion": 2}}
    resp = graph("PATCH", f"/applications/{app['id']}", both)
    assert resp.status_code == 400 and "'passwordCredentials'" in resp.json()["error"]["message"]


# ------------------------------------------------------------------ write quota [G11]


def test_personal_app_writes_beyond_the_quota_are_429_with_throttle_headers(emulators, graph):
    world = emulators.world
    world.graph.personal_write_limit = 3
    app = graph("POST", "/applications", personal()).json()  # 1
    assert graph("PATCH", f"/applications/{app['id']}", {"notes": "a"}).status_code == 204  # 2
    assert graph("POST", f"/applications/{app['id']}/addPassword", {}).status_code == 200  # 3
    world.clock.advance(seconds=20)
    resp = graph("PATCH", f"/applications/{app['id']}", {"notes": "b"})
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "TooManyRequests"
    assert resp.headers["Retry-After"] == "40"  # the first write leaves the 60 s window in 40 s
    scope = f"Tenant_Application/Write/{world.identity.client_id}/{world.entra.tenant_id}"
    assert resp.headers["x-ms-throttle-scope"] == scope
    assert resp.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert world.graph.throttled_count == 1 and world.graph.personal_write_count == 3
    assert world.graph.apps[app["id"]].data.get("notes") == "a"  # not processed
    # Reads are not writes; other audiences are not counted.
    assert graph("GET", f"/applications/{app['id']}").status_code == 200
    assert graph("POST", "/applications", org()).status_code == 201
    world.clock.advance(seconds=41)
    assert graph("PATCH", f"/applications/{app['id']}", {"notes": "c"}).status_code == 204


@pytest.mark.parametrize("write", ["addPassword", "removePassword", "delete", "upsert", "create"])
def test_every_kind_of_write_to_a_personal_app_counts(emulators, graph, write):
    world = emulators.world
    app = graph("POST", "/applications", personal(uniqueName="quota-app")).json()
    key = graph("POST", f"/applications/{app['id']}/addPassword", {}).json()["keyId"]
    world.graph.personal_write_limit = world.graph.personal_write_count  # the quota is now used up
    calls = {
        "addPassword": ("POST", f"/applications/{app['id']}/addPassword", {}),
        "removePassword": ("POST", f"/applications/{app['id']}/removePassword", {"keyId": key}),
        "delete": ("DELETE", f"/applications/{app['id']}", None),
        "upsert": ("PATCH", "/applications(uniqueName='quota-app')", {"notes": "x"}),
        "create": ("POST", "/applications", personal(displayName="another")),
    }
    method, path, body = calls[write]
    assert graph(method, path, body).status_code == 429
    assert world.graph.throttled_count == 1


def test_write_quota_window_and_limit_are_settable_and_reset(emulators, graph):
    world = emulators.world
    world.graph.personal_write_limit = 1
    world.graph.personal_write_window_seconds = 5
    graph("POST", "/applications", personal())
    resp = graph("POST", "/applications", personal(displayName="two"))
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5"
    world.graph.personal_write_limit = None  # off
    assert graph("POST", "/applications", personal(displayName="three")).status_code == 201
    world.reset()
    assert (world.graph.personal_write_limit, world.graph.personal_write_window_seconds) == (60, 60.0)
    assert world.graph.throttled_count == 0 and world.graph.personal_write_count == 0
