"""azure-identity ClientSecretCredential (MSAL underneath) against the Entra token emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError

from tests.contract.contract_support import GRAPH_SCOPE, credential


def new_app_with_secret(emulators, service_principal: bool = True, **kwargs):
    """An app as the service provisions it: with its service principal (unless told otherwise) and a secret."""
    app = emulators.world.graph.create_app(
        emulators.world.identity.client_id, {"displayName": "nylas"}, service_principal=service_principal
    )
    _, secret = emulators.world.graph.add_password_direct(app.object_id, "rotator", **kwargs)
    return app, secret


def refused(emulators, client_id: str, secret: str) -> str:
    with pytest.raises(ClientAuthenticationError) as err:
        credential(emulators, client_id, secret).get_token(GRAPH_SCOPE)
    return err.value.message


def test_service_identity_gets_graph_and_vault_tokens(emulators):
    cred = credential(emulators)
    assert cred.get_token(GRAPH_SCOPE).token
    assert cred.get_token("https://vault.azure.net/.default").token
    assert emulators.world.calls["entra.openid_configuration"] == 1


def test_new_secret_refused_until_propagated_then_accepted(emulators):
    emulators.world.entra.propagation_delay = 60
    app, secret = new_app_with_secret(emulators)
    assert "AADSTS7000215" in refused(emulators, app.app_id, secret)
    assert emulators.world.entra.token_works(emulators.world.entra.tenant_id, app.app_id, secret) == (
        False,
        "AADSTS7000215",
    )
    emulators.world.clock.advance(seconds=61)
    assert credential(emulators, app.app_id, secret).get_token(GRAPH_SCOPE).token


def test_expired_secret_is_aadsts7000222(emulators):
    app, secret = new_app_with_secret(emulators, end=emulators.world.clock.now() + timedelta(days=1))
    emulators.world.clock.advance(days=2)
    assert "AADSTS7000222" in refused(emulators, app.app_id, secret)


def test_unknown_client_is_aadsts700016(emulators):
    assert "AADSTS700016" in refused(emulators, "00000000-0000-0000-0000-000000000001", "whatever")


def test_wrong_secret_is_aadsts7000215(emulators):
    app, _ = new_app_with_secret(emulators)
    assert "AADSTS7000215" in refused(emulators, app.app_id, "not-the-secret")


def test_removed_secret_stops_working(emulators):
    app, secret = new_app_with_secret(emulators)
    assert emulators.world.entra.token_works(emulators.world.entra.tenant_id, app.app_id, secret) == (True, "")
    for cred in list(app.password_credentials):
        emulators.world.graph.remove_password_direct(app.object_id, cred.key_id)
    assert "AADSTS7000215" in refused(emulators, app.app_id, secret)


def token_request(emulators, tenant: str, **form: str) -> requests.Response:
    return requests.post(f"{emulators.urls['entra']}/{tenant}/oauth2/v2.0/token", data=form, verify=emulators.ca_path)


def test_error_body_has_entra_shape(emulators):
    resp = token_request(
        emulators,
        emulators.world.entra.tenant_id,
        grant_type="client_credentials",
        client_id="00000000-0000-0000-0000-000000000002",
        client_secret="x",
        scope=GRAPH_SCOPE,
    )
    body = resp.json()
    assert resp.status_code == 400 and body["error"] == "unauthorized_client"
    assert set(body) >= {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    }
    assert body["error_codes"] == [700016]


@pytest.mark.parametrize("case", ["wrong-secret", "expired", "unknown-app"])
def test_client_credentials_refusals_have_the_published_status_error_and_text(emulators, case):
    # [T1][T2][T3]: AADSTS7000215 and AADSTS7000222 are 401 invalid_client, AADSTS700016 400 unauthorized_client.
    world = emulators.world
    app, secret = new_app_with_secret(emulators, end=world.clock.now() + timedelta(days=1))
    client_id, sent = app.app_id, "not-the-secret"
    if case == "expired":
        world.clock.advance(days=2)
        sent = secret
    elif case == "unknown-app":
        client_id = "00000000-0000-0000-0000-000000000004"
    resp = token_request(
        emulators,
        world.entra.tenant_id,
        grant_type="client_credentials",
        client_id=client_id,
        client_secret=sent,
        scope=GRAPH_SCOPE,
    )
    body = resp.json()
    expected = {
        "wrong-secret": (
            401,
            "invalid_client",
            [7000215],
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        ),
        "expired": (401, "invalid_client", [7000222], "AADSTS7000222: The provided client secret keys"),
        "unknown-app": (
            400,
            "unauthorized_client",
            [700016],
            f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
            f"'{world.entra.tenant_id}'.",
        ),
    }[case]
    assert (resp.status_code, body["error"], body["error_codes"]) == expected[:3]
    assert body["error_description"].startswith(expected[3])


def test_unknown_tenant_is_aadsts90002(emulators):
    env = emulators.env()
    resp = token_request(
        emulators,
        "not-a-tenant",
        grant_type="client_credentials",
        client_id=env["AZURE_CLIENT_ID"],
        client_secret=env["AZURE_CLIENT_SECRET"],
        scope=GRAPH_SCOPE,
    )
    assert resp.status_code == 400 and "AADSTS90002" in resp.json()["error_description"]
    discovery = requests.get(
        f"{emulators.urls['entra']}/not-a-tenant/v2.0/.well-known/openid-configuration", verify=emulators.ca_path
    )
    assert discovery.status_code == 400


def test_successful_token_shape(emulators):
    env = emulators.env()
    resp = token_request(
        emulators,
        env["AZURE_TENANT_ID"],
        grant_type="client_credentials",
        client_id=env["AZURE_CLIENT_ID"],
        client_secret=env["AZURE_CLIENT_SECRET"],
        scope="https://vault.azure.net/.default",
    )
    body = resp.json()
    assert resp.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["access_token"]


# ------------------------------------------------------------------ service principal [T4]


def test_client_credentials_without_a_service_principal_is_aadsts7000229(emulators):
    world = emulators.world
    app, secret = new_app_with_secret(emulators, service_principal=False)
    assert "AADSTS7000229" in refused(emulators, app.app_id, secret)
    resp = token_request(
        emulators,
        world.entra.tenant_id,
        grant_type="client_credentials",
        client_id=app.app_id,
        client_secret=secret,
        scope=GRAPH_SCOPE,
    )
    body = resp.json()
    # The status is UNCONFIRMED [T4]: 401 like Entra's other invalid_client answers (guessed).
    assert (resp.status_code, body["error"], body["error_codes"]) == (401, "invalid_client", [7000229])
    assert body["error_description"].startswith(
        f"AADSTS7000229: The client application {app.app_id} is missing service principal in the tenant "
        f"{world.entra.tenant_id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
    )
    assert world.entra.token_works(world.entra.tenant_id, app.app_id, secret) == (False, "AADSTS7000229")
    world.graph.add_service_principal(app)
    assert credential(emulators, app.app_id, secret).get_token(GRAPH_SCOPE).token


def test_a_missing_service_principal_does_not_hide_an_unknown_app(emulators):
    # AADSTS7000229 is for apps that exist; an unknown client id stays AADSTS700016.
    assert "AADSTS700016" in refused(emulators, "00000000-0000-0000-0000-000000000003", "whatever")


def test_user_grants_and_nylas_do_not_need_a_service_principal(emulators):
    # Only client-credentials tokens need the service principal; Nylas redeems codes and refresh tokens.
    world = emulators.world
    app, secret = new_app_with_secret(emulators, service_principal=False)
    assert world.entra.client_works(app.app_id, secret) == (True, "")
    world.nylas.add_v3_app("nylas-sp", "key-sp")
    world.nylas.add_v3_connector("nylas-sp", app.app_id, secret)
    assert world.nylas_secret_works("nylas-sp")


def test_service_identity_has_a_service_principal(emulators):
    world = emulators.world
    sp = world.graph.sp_by_app_id(world.identity.client_id)
    assert sp is not None and sp.object_id == world.identity.sp_object_id
    world.reset()
    assert world.graph.sp_by_app_id(world.identity.client_id) is not None
    assert credential(emulators).get_token(GRAPH_SCOPE).token
