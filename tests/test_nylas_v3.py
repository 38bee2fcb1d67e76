"""Nylas v3 as it is today: the v3 app shape, one connector credential per customer, a mailbox user
who stays signed in across rotations, the connector held by one tenant, two secrets at most.

Everything goes through the real function handler and the real SDK clients against the
emulators; a simulated user signs in through Nylas hosted auth (devenv.mailbox) and Nylas
refreshes that user's token with the secret it holds, the way a synced mailbox does."""

from __future__ import annotations

import pytest

from blueprints.http_api import get_tenant_http, provision_tenant
from devenv.scenario import (
    Tenant,
    add_foreign_credential,
    check_settled,
    credentials,
    nylas_credential_id,
    provision,
    register_nylas,
    sign_in_user,
    tenant_body,
    users_who_cannot_refresh,
)
from tests.support import http_request, provision_and_settle, response_json

URL = "https://func.example/api/tenants"
GRAPH = "00000003-0000-0000-c000-000000000000"
V3_CALLBACK = {
    "us": "https://api.us.nylas.com/v3/connect/callback",
    "eu": "https://api.eu.nylas.com/v3/connect/callback",
}


WRITES = ("set_", "update_", "delete_", "add_", "remove_", "create_", "patch_", "upsert_")


def written(emulators) -> list[str]:
    """Routes called that change something (Graph, Key Vault, Nylas); reads and tokens are fine."""
    return [r for r in emulators.world.calls if any(w in r.split(".", 1)[1] for w in WRITES)]


def post(body):
    return provision_tenant(http_request("POST", URL, body))


def rotate(svc, emulators, tenant: Tenant, times: int = 1) -> None:
    for _ in range(times):
        emulators.world.clock.advance(days=710)
        outcome = svc.engine.rotate(tenant.name)
        assert outcome.result.value == "rotated", outcome


@pytest.mark.parametrize("region", ["us", "eu"])
def test_v3_credential_tenant_gets_the_v3_app_and_its_user_keeps_refreshing_through_three_rotations(
    svc, emulators, region
):
    body = tenant_body("acme", "v3-credential", region=region)
    register_nylas(emulators, body)

    out = provision_and_settle(body)

    app = emulators.world.graph.apps[out["appObjectId"]].data
    assert app["web"]["redirectUris"] == [V3_CALLBACK[region]]
    assert app["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert app["api"]["requestedAccessTokenVersion"] == 2
    assert {r["resourceAppId"] for r in app["requiredResourceAccess"]} == {GRAPH}  # Graph scopes only
    assert all(a["type"] == "Scope" for r in app["requiredResourceAccess"] for a in r["resourceAccess"])
    tenant = Tenant("acme", body, out["appObjectId"], out["clientId"], body["nylas"]["appId"], "v3-credential")
    credential_id = nylas_credential_id(emulators, tenant)
    assert credential_id and out["nylas"]["credentialId"] == credential_id
    assert f"credential_id={credential_id}" in out["hostedAuthUrl"]
    assert out["hostedAuthUrl"].startswith(f"https://api.{region}.nylas.com/v3/connect/auth?")

    sign_in_user(emulators, tenant, "ada@outlook.com")  # a personal account
    sign_in_user(emulators, tenant, "grace@contoso.example")  # a work account of another organization
    rotate(svc, emulators, tenant, times=3)

    assert users_who_cannot_refresh(emulators, tenant) == []
    assert check_settled(svc, emulators, tenant) == []
    assert nylas_credential_id(emulators, tenant) == credential_id  # patched in place, never replaced


def test_v2_tenant_keeps_the_v2_app_and_no_v3_user_can_sign_in_to_it(svc, emulators):
    tenant = provision(svc, emulators, "legacy", "v2-integration")

    app = emulators.world.graph.apps[tenant.object_id].data
    assert app["web"]["redirectUris"] == ["https://api.nylas.com/oauth/callback"]
    assert app["signInAudience"] == "AzureADMultipleOrgs"
    exchange = "00000002-0000-0ff1-ce00-000000000000"
    assert exchange in {r["resourceAppId"] for r in app["requiredResourceAccess"]}  # EAS/EWS, as the v2 page says


def test_two_credential_tenants_under_one_nylas_application_rotate_independently(svc, emulators):
    acme = provision(svc, emulators, "acme", "v3-credential", nylas_app="shared-app")
    globex = provision(svc, emulators, "globex", "v3-credential", nylas_app="shared-app")
    sign_in_user(emulators, acme, "ada@acme.example")
    sign_in_user(emulators, globex, "bob@globex.example")
    globex_before = emulators.world.nylas.credential("shared-app", nylas_credential_id(emulators, globex))

    rotate(svc, emulators, acme)

    assert emulators.world.nylas.credential("shared-app", nylas_credential_id(emulators, globex)) == globex_before
    assert nylas_credential_id(emulators, acme) != nylas_credential_id(emulators, globex)
    assert check_settled(svc, emulators, acme) == [] and check_settled(svc, emulators, globex) == []
    # The connector's own default app (the customer's) is untouched by either.
    assert emulators.world.nylas_secret_works("shared-app")


def test_second_connector_tenant_on_the_same_application_is_refused_naming_the_holder(svc, emulators):
    provision(svc, emulators, "first", "v3-connector", nylas_app="one-connector")
    emulators.world.reset_calls()

    second = tenant_body("second", "v3-connector", nylas_app="one-connector")
    response = post(second)

    assert response.status_code == 409, response.get_body()
    error = response_json(response)["error"]
    assert error["field"] == "nylas.appId" and "first" in error["message"]
    assert written(emulators) == []  # refused before any write
    assert not any(s.startswith("nylas-entra-second") for s in emulators.world.keyvault.secrets)


def test_connector_tenant_creates_the_microsoft_connector_when_the_application_has_none(svc, emulators):
    tenant = provision(svc, emulators, "solo", "v3-connector")

    assert emulators.world.nylas.current(tenant.nylas_app_id)[0] == tenant.client_id
    sign_in_user(emulators, tenant, "ada@solo.example")  # no credential_id: the connector's own
    rotate(svc, emulators, tenant)
    assert check_settled(svc, emulators, tenant) == []


def test_credential_tenant_on_an_application_without_connector_gets_the_next_step_and_no_write(svc, emulators):
    body = tenant_body("acme", "v3-credential")
    emulators.world.nylas.add_v3_app(body["nylas"]["appId"], body["nylas"]["credential"])  # no connector
    emulators.world.reset_calls()

    response = post(body)

    assert response.status_code == 409, response.get_body()
    error = response_json(response)["error"]
    assert error["field"] == "nylas.appId" and "connector" in error["message"]
    assert written(emulators) == []
    assert emulators.world.calls["nylas.v3_get_connector"] == 1
    assert not emulators.world.keyvault.secrets


def test_a_wrong_nylas_api_key_is_refused_naming_the_credential_field(svc, emulators):
    body = tenant_body("acme", "v3-credential")
    register_nylas(emulators, body)
    body["nylas"]["credential"] = "nyk_not_the_key"

    response = post(body)

    assert response.status_code == 400
    assert response_json(response)["error"]["field"] == "nylas.credential"
    assert not emulators.world.keyvault.secrets


def test_a_credential_deleted_at_nylas_by_hand_is_recreated_by_the_next_rotation_and_reported(svc, emulators, alerts):
    tenant = provision(svc, emulators, "acme", "v3-credential")
    old = nylas_credential_id(emulators, tenant)
    emulators.world.nylas.apps[tenant.nylas_app_id].credentials.pop(old)

    rotate(svc, emulators, tenant)

    new = nylas_credential_id(emulators, tenant)
    assert new and new != old
    assert "nylas-credential-recreated" in alerts.kinds()
    assert check_settled(svc, emulators, tenant) == []
    out = response_json(get_tenant_http(http_request("GET", f"{URL}/acme", route_params={"tenant": "acme"})))
    assert out["nylas"]["credentialId"] == new


# --- two secrets at most -------------------------------------------------------------------------


def secrets_held(emulators, tenant: Tenant) -> int:
    return len(emulators.world.graph.apps[tenant.object_id].password_credentials)


def test_with_two_foreign_secrets_a_personal_app_is_not_rotated_and_the_alert_says_how_to_fix_it(
    svc, emulators, alerts
):
    tenant = provision(svc, emulators, "acme", "v3-credential")
    ours = credentials(emulators, tenant)[0][0].key_id
    emulators.world.graph.remove_password_direct(tenant.object_id, ours)  # a person removed ours...
    add_foreign_credential(emulators, tenant, "added by hand")
    add_foreign_credential(emulators, tenant, "nylas-entra-rotator manual copy")  # ...and added two look-alikes
    emulators.world.clock.advance(days=710)
    emulators.world.reset_calls()

    outcome = svc.engine.rotate(tenant.name)

    assert outcome.result.value == "refused"
    assert secrets_held(emulators, tenant) == 2
    assert emulators.world.calls["graph.add_password"] == 0 and emulators.world.calls["keyvault.set_secret"] == 0
    refusal = [a for a in alerts.alerts if a.kind == "secret-limit"]
    assert refusal and "Certificates & secrets" in refusal[-1].action


def test_with_one_foreign_secret_beside_ours_the_rotation_refuses_rather_than_revoke_first(svc, emulators, alerts):
    tenant = provision(svc, emulators, "acme", "v3-credential")
    sign_in_user(emulators, tenant, "ada@outlook.com")
    add_foreign_credential(emulators, tenant)
    emulators.world.clock.advance(days=710)

    outcome = svc.engine.rotate(tenant.name)

    assert outcome.result.value == "refused"
    assert secrets_held(emulators, tenant) == 2
    assert users_who_cannot_refresh(emulators, tenant) == []
    assert "secret-limit" in alerts.kinds()


def test_graph_refusing_a_third_secret_is_a_permanent_refusal_with_the_same_alert(svc, emulators, alerts):
    tenant = provision(svc, emulators, "acme", "v3-credential")
    emulators.world.clock.advance(days=710)
    emulators.world.faults.inject("graph.add_password", status=400, error_code="TooManyAppPasswords")

    outcome = svc.engine.rotate(tenant.name)

    assert outcome.result.value == "refused"
    assert "secret-limit" in alerts.kinds()
    assert check_settled(svc, emulators, tenant) == []


def test_adopting_a_personal_app_that_holds_a_foreign_secret_is_refused_before_any_write(svc, emulators):
    foreign = emulators.world.graph.create_app(emulators.world.identity.client_id, {"displayName": "theirs"})
    emulators.world.graph.add_password_direct(foreign.object_id, "made in the portal")
    body = tenant_body("acme", "v3-credential", existingAppId=foreign.app_id)
    register_nylas(emulators, body)

    response = post(body)

    assert response.status_code == 409
    assert response_json(response)["error"]["field"] == "existingAppId"
    assert len(emulators.world.graph.apps[foreign.object_id].password_credentials) == 1
    assert not any(n.startswith("nylas-entra-acme") for n in emulators.world.keyvault.secrets)
