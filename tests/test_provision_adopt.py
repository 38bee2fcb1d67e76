"""Adoption (existingAppId): an app registration made by hand becomes a managed tenant, keeping what
is not ours; an app the service's identity does not own, or that another tenant manages, is refused
before anything is written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from blueprints.http_api import provision_tenant
from provisioning.manifest import load_manifest
from tests.support import (
    calls_by_dependency,
    drain_queue,
    http_request,
    our_credentials,
    provision_and_settle,
    record_of,
    register_nylas,
    response_json,
    tenant_body,
)

URL = "https://func.example/api/tenants"
WRITE_ROUTES = {
    "graph.create_application",
    "graph.upsert_application",
    "graph.update_application",
    "graph.delete_application",
    "graph.add_password",
    "graph.remove_password",
    "graph.create_service_principal",
    "keyvault.set_secret",
    "keyvault.update_secret",
    "keyvault.delete_secret",
    "keyvault.recover_deleted_secret",
    "keyvault.purge_deleted_secret",
    "nylas.v3_patch_connector",
    "nylas.v2_patch_integration",
}


def post(body):
    return provision_tenant(http_request("POST", URL, body))


def writes(emulators) -> dict[str, int]:
    return {route: n for route, n in emulators.world.calls.items() if route in WRITE_ROUTES}


def hand_made_app(emulators, owner: str | None = None):
    """An app registration someone made in the portal, owned by the service's identity (or by owner),
    with two client secrets of their own."""
    world = emulators.world
    app = world.graph.create_app(
        owner or world.identity.client_id,
        {
            "displayName": "Acme mail (made by hand)",
            "signInAudience": "AzureADMyOrg",
            "web": {"redirectUris": ["https://old.example.com/callback"], "logoutUrl": "https://old.example.com/out"},
            "tags": ["hand-made"],
        },
    )
    end = world.clock.now() + timedelta(days=400)
    foreign = [world.graph.add_password_direct(app.object_id, "portal secret", end)[0]]
    foreign.append(world.graph.add_password_direct(app.object_id, None)[0])
    return app, foreign


def foreign_credentials(emulators, object_id: str) -> list[tuple[str, str | None, object, object]]:
    app = emulators.world.graph.apps[object_id]
    return [(p.key_id, p.display_name, p.start, p.end) for p in app.password_credentials]


@pytest.mark.parametrize("target", ["v3-connector", "v2-integration", "manual"])
def test_adopting_an_owned_app_reshapes_it_and_adds_one_credential_leaving_foreign_ones(svc, emulators, target):
    app, foreign_keys = hand_made_app(emulators)
    before = foreign_credentials(emulators, app.object_id)
    # Work accounts only: an app that also signs in personal accounts has no room for foreign secrets.
    body = tenant_body("acme", target, existingAppId=app.app_id.upper(), audience="multi-org")
    register_nylas(emulators, body)

    out = provision_and_settle(body)

    assert (out["appObjectId"], out["clientId"]) == (app.object_id, app.app_id)
    assert len(emulators.world.graph.apps) == 2  # the service identity and the adopted app: nothing new
    adopted = emulators.world.graph.apps[app.object_id]
    assert adopted.display_name == body["displayName"]
    assert adopted.data["signInAudience"] == "AzureADMultipleOrgs"
    if target.startswith("v3-"):
        assert adopted.data["web"]["redirectUris"] == ["https://api.us.nylas.com/v3/connect/callback"]
        graph_only = {r["resourceAppId"] for r in adopted.data["requiredResourceAccess"]}
        assert graph_only == {"00000003-0000-0000-c000-000000000000"}
    else:
        assert adopted.data["web"]["redirectUris"] == ["https://api.nylas.com/oauth/callback"]
        assert adopted.data["requiredResourceAccess"] == list(load_manifest().required_resource_access)
    assert set(adopted.data["tags"]) == {"nylas-entra-rotator", "tenant:acme"}
    ours = our_credentials(emulators, app.object_id)
    assert [p.key_id for p in ours] == [out["keyId"]]
    assert [c for c in foreign_credentials(emulators, app.object_id) if c[0] in foreign_keys] == before
    assert emulators.world.graph.sp_by_app_id(app.app_id) is not None
    assert record_of(svc, "acme").client_id == app.app_id
    if target != "manual":
        assert out["rotationState"] == "current"
        assert emulators.world.nylas_secret_works(body["nylas"]["appId"])


def test_adopted_tenant_posted_again_answers_200_and_adds_no_credential(svc, emulators):
    app, _ = hand_made_app(emulators)
    body = tenant_body("acme", "v3-connector", existingAppId=app.app_id, audience="multi-org")
    register_nylas(emulators, body)
    first = post(body)
    drain_queue(svc)
    credentials = foreign_credentials(emulators, app.object_id)
    emulators.world.reset_calls()

    second = post(body)

    assert (first.status_code, second.status_code) == (202, 200), second.get_body()
    assert response_json(second)["keyId"] == response_json(first)["keyId"]
    assert foreign_credentials(emulators, app.object_id) == credentials
    assert sum(calls_by_dependency(emulators).values()) <= 2
    assert writes(emulators) == {}


@pytest.mark.parametrize("target", ["v3-connector", "manual"])
def test_adopting_an_app_the_identity_does_not_own_answers_403_and_writes_nothing(svc, emulators, target):
    app, _ = hand_made_app(emulators, owner="someone-else")
    before = (dict(app.data), foreign_credentials(emulators, app.object_id))
    body = tenant_body("acme", target, existingAppId=app.app_id)
    register_nylas(emulators, body)
    emulators.world.reset_calls()

    response = post(body)

    assert response.status_code == 403, response.get_body()
    error = response_json(response)["error"]
    assert (error["code"], error["field"]) == ("app_not_owned", "existingAppId")
    assert writes(emulators) == {}
    assert emulators.world.calls["graph.get_application"] == 1
    assert (dict(app.data), foreign_credentials(emulators, app.object_id)) == before
    assert not emulators.world.keyvault.secrets  # not even the inline Nylas credential
    assert emulators.world.nylas.history(body["nylas"]["appId"]) == []


def test_adopting_an_app_id_that_does_not_exist_answers_400_on_existing_app_id(svc, emulators):
    body = tenant_body("acme", "v3-connector", existingAppId="6f1c7b5e-0e4a-4c53-9d0e-2b1f5a3c9e11")
    register_nylas(emulators, body)
    emulators.world.reset_calls()

    response = post(body)

    assert response.status_code == 400, response.get_body()
    error = response_json(response)["error"]
    assert (error["code"], error["field"]) == ("invalid_request", "existingAppId")
    assert writes(emulators) == {}
    assert not emulators.world.keyvault.secrets


def test_adopting_an_app_another_tenant_manages_answers_409_and_leaves_its_credential(svc, emulators):
    first = tenant_body("one", "v3-connector")
    register_nylas(emulators, first)
    one = provision_and_settle(first)
    second = tenant_body("two", "v3-connector", existingAppId=one["clientId"])
    register_nylas(emulators, second)
    emulators.world.reset_calls()

    response = post(second)

    assert response.status_code == 409, response.get_body()
    error = response_json(response)["error"]
    assert (error["code"], error["field"]) == ("conflict", "existingAppId")
    assert writes(emulators) == {}
    assert [p.key_id for p in our_credentials(emulators, one["appObjectId"])] == [one["keyId"]]
    assert emulators.world.nylas_secret_works(first["nylas"]["appId"])


def test_posting_a_provisioned_tenant_with_another_existing_app_id_answers_409(svc, emulators):
    app, _ = hand_made_app(emulators)
    body = tenant_body("acme", "v3-connector")
    register_nylas(emulators, body)
    assert post(body).status_code == 202
    emulators.world.reset_calls()

    response = post({**body, "existingAppId": app.app_id})

    assert response.status_code == 409, response.get_body()
    assert response_json(response)["error"]["field"] == "existingAppId"
    assert writes(emulators) == {}
    assert foreign_credentials(emulators, app.object_id) == [
        (p.key_id, p.display_name, p.start, p.end) for p in app.password_credentials
    ]
    assert not our_credentials(emulators, app.object_id)


def test_credential_secret_naming_a_tenant_client_secret_is_refused_before_any_write(svc, emulators):
    first = tenant_body("one", "v3-connector")
    register_nylas(emulators, first)
    assert post(first).status_code == 202
    body = tenant_body("two", "v3-connector")
    del body["nylas"]["credential"]
    body["nylas"]["credentialSecret"] = "nylas-entra-one"  # tenant one's Entra client secret
    emulators.world.reset_calls()

    response = post(body)

    assert response.status_code == 400, response.get_body()
    assert response_json(response)["error"]["field"] == "nylas.credentialSecret"
    assert writes(emulators) == {}
    assert not any(a.unique_name == "nylas-entra-two" for a in emulators.world.graph.apps.values())


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"managed-by": "nylas-entra-rotator", "tenant": "one", "purpose": "nylas-credential"}, "tenant one's key"),
        ({}, "an untagged secret"),
        ({"purpose": "nylas-credential"}, "no tenant named"),
    ],
)
def test_credential_secret_must_be_marked_as_this_tenants_nylas_key(svc, emulators, tags, why):
    first = tenant_body("one", "v3-connector")
    register_nylas(emulators, first)
    assert post(first).status_code == 202
    if why != "tenant one's key":
        svc.deps.vault.set("some-key", "nyk_someone_elses_key_0001", tags=tags, expires_on=None, content_type="")
    body = tenant_body("two", "v3-connector")
    del body["nylas"]["credential"]
    body["nylas"]["credentialSecret"] = "nylas-entra-one--nylas" if why == "tenant one's key" else "some-key"
    emulators.world.reset_calls()

    response = post(body)

    assert response.status_code == 400, (why, response.get_body())
    assert response_json(response)["error"]["field"] == "nylas.credentialSecret"
    assert writes(emulators) == {}


def test_credential_secret_marked_for_the_tenant_is_used(svc, emulators):
    body = tenant_body("two", "v3-credential")
    register_nylas(emulators, body)
    key = body["nylas"].pop("credential")
    svc.deps.vault.set(
        "two-nylas-key", key, tags={"purpose": "nylas-credential", "tenant": "two"}, expires_on=None, content_type=""
    )
    body["nylas"]["credentialSecret"] = "two-nylas-key"

    assert provision_and_settle(body)["rotationState"] == "current"
