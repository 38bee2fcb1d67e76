"""GraphServiceClient (msgraph-sdk over kiota/httpx) against the Graph emulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.user import User
from msgraph.generated.models.web_application import WebApplication

from tests.contract.contract_support import GRAPH_SCOPE, credential, prefer_create_if_missing, with_graph


def new_app(**kwargs) -> Application:
    kwargs.setdefault("display_name", "nylas-app")
    return Application(**kwargs)


def add_password(client, object_id: str, end: datetime | None = None, name: str = "rotator"):
    body = AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name=name, end_date_time=end))
    return client.applications.by_application_id(object_id).add_password.post(body)


def filtered(expr: str, top: int | None = None) -> RequestConfiguration[Any]:
    params = ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(filter=expr, top=top)
    return RequestConfiguration(query_parameters=params)


def odata_error(emu, body) -> ODataError:
    with pytest.raises(ODataError) as err:
        with_graph(emu, body)
    return err.value


def test_create_get_by_id_app_id_and_unique_name(emulators):
    async def body(client):
        web = WebApplication(redirect_uris=["https://api.us.nylas.com/v3/connect/callback"])
        app = await client.applications.post(
            new_app(unique_name="nylas-t1", tags=["nylas"], notes="n", sign_in_audience="AzureADMultipleOrgs", web=web)
        )
        by_id = await client.applications.by_application_id(app.id).get()
        by_app_id = await client.applications_with_app_id(app.app_id).get()
        by_unique = await client.applications_with_unique_name("nylas-t1").get()
        return app, by_id, by_app_id, by_unique

    app, by_id, by_app_id, by_unique = with_graph(emulators, body)
    assert by_id.id == by_app_id.id == by_unique.id == app.id
    assert by_id.web.redirect_uris == ["https://api.us.nylas.com/v3/connect/callback"]
    assert by_id.sign_in_audience == "AzureADMultipleOrgs" and by_id.tags == ["nylas"] and by_id.notes == "n"
    assert emulators.world.graph.apps[app.id].owners == {emulators.world.identity.client_id}


def test_add_password_returns_secret_once_and_get_never_does(emulators):
    async def body(client):
        app = await client.applications.post(new_app())
        cred = await add_password(client, app.id)
        again = await client.applications.by_application_id(app.id).get()
        return cred, again

    cred, again = with_graph(emulators, body)
    assert len(cred.secret_text) == 40 and not any(c.isspace() for c in cred.secret_text)
    assert cred.hint == cred.secret_text[:3] and cred.custom_key_identifier is None
    assert cred.end_date_time - cred.start_date_time >= timedelta(days=730)  # default: two years
    [listed] = again.password_credentials
    assert listed.key_id == cred.key_id and listed.secret_text is None and listed.hint == cred.hint


def test_add_password_honours_requested_end(emulators):
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)

    async def body(client):
        app = await client.applications.post(new_app())
        return await add_password(client, app.id, end=end)

    assert with_graph(emulators, body).end_date_time == end


def test_lifetime_policy_refusal_names_the_policy_not_the_maximum(emulators):
    graph = emulators.world.graph
    graph.lifetime_policy_max_days = 90

    async def body(client):
        app = await client.applications.post(new_app())
        ok = await add_password(client, app.id, end=datetime.now(UTC) + timedelta(days=60))
        assert ok.secret_text
        await add_password(client, app.id, end=datetime.now(UTC) + timedelta(days=365))

    err = odata_error(emulators, body)
    message = f"Credential lifetime exceeds the max value allowed as per assigned policy '{graph.tenant_policy_id}'."
    assert err.response_status_code == 400
    assert err.error.code == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert err.error.message == message  # [G8]: the policy's id, never the allowed number of days
    assert uuid.UUID(graph.tenant_policy_id)
    [detail] = err.error.details or []
    assert (detail.code, detail.message, detail.target) == ("InvalidKeyEndDate", message, "EndDate")
    assert err.error.inner_error.request_id


def test_lifetime_policy_assigned_to_one_app_is_named_by_its_own_id(emulators):
    graph = emulators.world.graph
    graph.app_lifetime_policies["short-lived"] = 30

    async def body(client):
        other = await client.applications.post(new_app(unique_name="long-lived"))
        assert (await add_password(client, other.id, end=datetime.now(UTC) + timedelta(days=365))).secret_text
        app = await client.applications.post(new_app(unique_name="short-lived"))
        await add_password(client, app.id, end=datetime.now(UTC) + timedelta(days=31))

    err = odata_error(emulators, body)
    assert err.error.code == "CredentialInvalidLifetimeAsPerAppPolicy"
    policy_id = graph.app_policy_id("short-lived")
    assert policy_id != graph.tenant_policy_id and f"policy '{policy_id}'." in err.error.message


def test_remove_password(emulators):
    async def body(client):
        app = await client.applications.post(new_app())
        cred = await add_password(client, app.id)
        await client.applications.by_application_id(app.id).remove_password.post(
            RemovePasswordPostRequestBody(key_id=cred.key_id)
        )
        return await client.applications.by_application_id(app.id).get()

    assert with_graph(emulators, body).password_credentials == []
    assert emulators.world.calls["graph.remove_password"] == 1


def test_remove_unknown_password_is_bad_request(emulators):
    async def body(client):
        app = await client.applications.post(new_app())
        await client.applications.by_application_id(app.id).remove_password.post(
            RemovePasswordPostRequestBody(key_id=uuid.uuid4())
        )

    err = odata_error(emulators, body)
    assert err.response_status_code == 400 and err.error.code == "Request_BadRequest"


def test_upsert_by_unique_name_creates_201_then_updates_204(emulators):
    async def body(client):
        created = await client.applications_with_unique_name("nylas-upsert").patch(
            new_app(display_name="v1"), prefer_create_if_missing()
        )
        updated = await client.applications_with_unique_name("nylas-upsert").patch(
            new_app(display_name="v2"), prefer_create_if_missing()
        )
        current = await client.applications_with_unique_name("nylas-upsert").get()
        return created, updated, current

    created, updated, current = with_graph(emulators, body)
    assert created.unique_name == "nylas-upsert" and created.display_name == "v1"
    assert updated is None  # 204
    assert current.display_name == "v2" and current.id == created.id
    statuses = [s for r, _, _, s in emulators.world.call_log if r == "graph.upsert_application"]
    assert statuses == [201, 204]


def test_upsert_without_prefer_on_missing_app_is_404(emulators):
    err = odata_error(emulators, lambda c: c.applications_with_unique_name("absent").patch(new_app()))
    assert err.response_status_code == 404 and err.error.code == "Request_ResourceNotFound"


def test_update_and_delete_application(emulators):
    async def body(client):
        app = await client.applications.post(new_app())
        await client.applications.by_application_id(app.id).patch(Application(display_name="renamed", tags=["x"]))
        renamed = await client.applications.by_application_id(app.id).get()
        await client.applications.by_application_id(app.id).delete()
        return app, renamed

    app, renamed = with_graph(emulators, body)
    assert renamed.display_name == "renamed" and renamed.tags == ["x"]
    assert app.id not in emulators.world.graph.apps


def test_missing_application_is_odata_request_resource_not_found(emulators):
    missing = str(uuid.uuid4())
    err = odata_error(emulators, lambda c: c.applications.by_application_id(missing).get())
    assert err.response_status_code == 404 and err.error.code == "Request_ResourceNotFound"
    assert f"Resource '{missing}' does not exist" in err.error.message
    assert err.error.inner_error.request_id


@pytest.mark.parametrize(
    "app",
    [
        Application(display_name="x" * 121),
        Application(display_name="ok", tags=["has space"]),
        Application(display_name="ok", tags=["dup", "dup"]),
        Application(),
    ],
    ids=["name-121", "tag-whitespace", "tag-duplicate", "no-name"],
)
def test_invalid_applications_are_bad_requests(emulators, app):
    err = odata_error(emulators, lambda c: c.applications.post(app))
    assert err.response_status_code == 400


def test_list_and_filter_return_every_app_of_the_directory_owned_or_not(emulators):
    # Application.ReadWrite.OwnedBy reads all applications of the tenant [G3].
    foreign = emulators.world.graph.add_foreign_app("nylas-app")

    async def body(client):
        mine = [await client.applications.post(new_app(unique_name=f"u{i}")) for i in range(5)]
        by_name = await client.applications.get(filtered("displayName eq 'nylas-app'"))
        by_app_id = await client.applications.get(filtered(f"appId eq '{mine[2].app_id}'"))
        by_unique = await client.applications.get(filtered("uniqueName eq 'u4'"))
        page = await client.applications.get(filtered("displayName eq 'nylas-app'", top=2))
        second = await client.applications.with_url(page.odata_next_link).get()
        everything = await client.applications.get()
        return mine, by_name, by_app_id, by_unique, page, second, everything

    mine, by_name, by_app_id, by_unique, page, second, everything = with_graph(emulators, body)
    assert {a.id for a in by_name.value} == {a.id for a in mine} | {foreign.object_id}
    assert [a.id for a in by_app_id.value] == [mine[2].id]
    assert [a.unique_name for a in by_unique.value] == ["u4"]
    assert len(page.value) == 2 and page.odata_next_link and len(second.value) == 2
    identity = emulators.world.identity.object_id
    assert {identity, foreign.object_id} <= {a.id for a in everything.value}


def test_default_page_is_100(emulators):
    async def body(client):
        for i in range(101):
            await client.applications.post(new_app(display_name=f"bulk-{i}"))
        return await client.applications.get()

    page = with_graph(emulators, body)
    assert len(page.value) == 100 and page.odata_next_link


def test_unowned_apps_are_readable(emulators):
    # [G3]: reads of every app, by id, appId and uniqueName, with its owners and service principal.
    foreign = emulators.world.graph.add_foreign_app("theirs", unique_name="theirs")

    async def body(client):
        by_id = await client.applications.by_application_id(foreign.object_id).get()
        by_app_id = await client.applications_with_app_id(foreign.app_id).get()
        by_unique = await client.applications_with_unique_name("theirs").get()
        owners = await client.applications.by_application_id(foreign.object_id).owners.get()
        sp = await client.service_principals_with_app_id(foreign.app_id).get()
        return by_id, by_app_id, by_unique, owners, sp

    by_id, by_app_id, by_unique, owners, sp = with_graph(emulators, body)
    assert by_id.id == by_app_id.id == by_unique.id == foreign.object_id and by_id.display_name == "theirs"
    assert len(owners.value) == 1 and sp.app_id == foreign.app_id


def _writes_to(foreign, key_id):
    return {
        "patch": lambda c: c.applications.by_application_id(foreign.object_id).patch(Application(notes="x")),
        "delete": lambda c: c.applications.by_application_id(foreign.object_id).delete(),
        "delete-by-app-id": lambda c: c.applications_with_app_id(foreign.app_id).delete(),
        "upsert": lambda c: c.applications_with_unique_name("theirs").patch(new_app(), prefer_create_if_missing()),
        "add-password": lambda c: add_password(c, foreign.object_id),
        "remove-password": lambda c: c.applications.by_application_id(foreign.object_id).remove_password.post(
            RemovePasswordPostRequestBody(key_id=uuid.UUID(key_id))
        ),
    }


@pytest.mark.parametrize("write", ["patch", "delete", "delete-by-app-id", "upsert", "add-password", "remove-password"])
def test_writes_to_unowned_apps_are_403_authorization_request_denied(emulators, write):
    world = emulators.world
    foreign = world.graph.add_foreign_app("theirs", unique_name="theirs")
    key_id, _ = world.graph.add_password_direct(foreign.object_id, "their secret")
    err = odata_error(emulators, _writes_to(foreign, key_id)[write])
    assert err.response_status_code == 403 and err.error.code == "Authorization_RequestDenied"
    assert err.error.message == "Insufficient privileges to complete the operation."
    app = world.graph.apps[foreign.object_id]  # nothing changed
    assert app.data.get("notes") is None and [p.key_id for p in app.password_credentials] == [key_id]


def test_service_principal_for_an_unowned_app_is_403(emulators):
    # [G5]: POST /servicePrincipals needs the caller to own the app; Graph's wording [G12].
    foreign = emulators.world.graph.add_foreign_app("theirs", service_principal=False)
    err = odata_error(emulators, lambda c: c.service_principals.post(ServicePrincipal(app_id=foreign.app_id)))
    assert err.response_status_code == 403 and err.error.code == "Authorization_RequestDenied"
    assert err.error.message == (
        "When using this permission, the backing application of the service principal being created must in the "
        "local tenant"
    )
    assert emulators.world.graph.sp_by_app_id(foreign.app_id) is None


def test_owners_of_an_app_the_service_created_is_its_service_principal(emulators):
    # The creator becomes the owner [G6]; Graph lists it as a directoryObject of type servicePrincipal.
    world = emulators.world

    async def body(client):
        app = await client.applications.post(new_app())
        return app, await client.applications.by_application_id(app.id).owners.get()

    app, owners = with_graph(emulators, body)
    [owner] = owners.value
    assert isinstance(owner, ServicePrincipal) and owner.odata_type == "#microsoft.graph.servicePrincipal"
    assert owner.id == world.identity.sp_object_id and owner.app_id == world.identity.client_id
    token = credential(emulators).get_token(GRAPH_SCOPE).token
    for path in (f"/applications/{app.id}/owners", f"/applications(appId='{app.app_id}')/owners"):
        resp = requests.get(
            emulators.urls["graph"] + path, headers={"Authorization": f"Bearer {token}"}, verify=emulators.ca_path
        )
        answer = resp.json()
        assert resp.status_code == 200 and answer["@odata.context"].endswith("/v1.0/$metadata#directoryObjects")
        [raw] = answer["value"]
        assert raw["@odata.type"] == "#microsoft.graph.servicePrincipal"
        assert (raw["id"], raw["appId"]) == (world.identity.sp_object_id, world.identity.client_id)
        assert raw["displayName"]
    assert world.calls["graph.list_owners"] == 3


def test_owners_of_a_foreign_app_is_someone_else(emulators):
    world = emulators.world
    foreign = world.graph.add_foreign_app("theirs", owner="ann@contoso.example")

    async def body(client):
        return await client.applications.by_application_id(foreign.object_id).owners.get()

    [owner] = with_graph(emulators, body).value
    assert isinstance(owner, User) and owner.odata_type == "#microsoft.graph.user"
    assert owner.user_principal_name == "ann@contoso.example" and uuid.UUID(owner.id)
    assert owner.id != world.identity.sp_object_id


def test_owners_of_a_missing_app_is_404(emulators):
    missing = str(uuid.uuid4())
    err = odata_error(emulators, lambda c: c.applications.by_application_id(missing).owners.get())
    assert err.response_status_code == 404 and err.error.code == "Request_ResourceNotFound"


def test_adding_owners_is_refused_under_owned_by(emulators):
    # Adding owners needs Application.ReadWrite.All [G4], even on an app the caller owns.
    async def body(client):
        app = await client.applications.post(new_app())
        ref = ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{uuid.uuid4()}")
        await client.applications.by_application_id(app.id).owners.ref.post(ref)

    err = odata_error(emulators, body)
    assert err.response_status_code == 403 and err.error.code == "Authorization_RequestDenied"


def test_replication_delay_404_then_success(emulators):
    emulators.world.graph.replication_delay = 30

    async def body(client):
        app = await client.applications.post(new_app())
        for read in (
            client.applications.by_application_id(app.id).get(),
            client.applications_with_app_id(app.app_id).get(),
            client.applications.by_application_id(app.id).owners.get(),
            add_password(client, app.id),
        ):
            with pytest.raises(ODataError) as err:
                await read
            assert err.value.response_status_code == 404
            assert err.value.error.code == "Request_ResourceNotFound"
        emulators.world.clock.advance(seconds=31)
        return await add_password(client, app.id)

    assert with_graph(emulators, body).secret_text


def test_service_principal_right_after_app_creation_is_400_request_bad_request(emulators):
    # [G12]: during replication POST /servicePrincipals does not resolve the app: 400, not 404.
    emulators.world.graph.replication_delay = 30

    async def body(client):
        app = await client.applications.post(new_app())
        with pytest.raises(ODataError) as err:
            await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
        emulators.world.clock.advance(seconds=31)
        return app, err.value, await client.service_principals.post(ServicePrincipal(app_id=app.app_id))

    app, err, sp = with_graph(emulators, body)
    assert err.response_status_code == 400 and err.error.code == "Request_BadRequest"
    assert err.error.message == (
        f"The appId '{app.app_id}' of the service principal does not reference a valid application object."
    )
    assert sp.app_id == app.app_id


def test_service_principal_during_replication_may_be_the_owned_by_403(emulators):
    # [G12]: under OwnedBy the same race also answers the "backing application" refusal (switch).
    world = emulators.world
    world.graph.replication_delay = 30
    world.graph.sp_denied_while_replicating = True

    async def body(client):
        app = await client.applications.post(new_app())
        with pytest.raises(ODataError) as err:
            await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
        world.clock.advance(seconds=31)
        return err.value, await client.service_principals.post(ServicePrincipal(app_id=app.app_id))

    err, sp = with_graph(emulators, body)
    assert err.response_status_code == 403 and err.error.code == "Authorization_RequestDenied"
    assert "backing application of the service principal being created must in the local tenant" in err.error.message
    assert sp.id
    world.reset()
    assert world.graph.sp_denied_while_replicating is False


def test_service_principal_for_an_unknown_app_id_is_400(emulators):
    unknown = str(uuid.uuid4())
    err = odata_error(emulators, lambda c: c.service_principals.post(ServicePrincipal(app_id=unknown)))
    assert err.response_status_code == 400 and err.error.code == "Request_BadRequest"
    assert f"The appId '{unknown}' of the service principal does not reference a valid application object." == (
        err.error.message
    )


def test_service_principal_create_get_and_conflict(emulators):
    async def body(client):
        app = await client.applications.post(new_app())
        sp = await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
        got = await client.service_principals_with_app_id(app.app_id).get()
        with pytest.raises(ODataError) as err:
            await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
        return app, sp, got, err.value

    app, sp, got, conflict = with_graph(emulators, body)
    assert sp.app_id == got.app_id == app.app_id and got.id == sp.id
    assert conflict.response_status_code == 409 and conflict.error.code == "Request_MultipleObjectsWithSameKeyValue"


def test_requests_without_a_valid_token_are_401(emulators):
    resp = requests.get(emulators.urls["graph"] + "/applications", verify=emulators.ca_path)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert resp.headers["request-id"] == resp.json()["error"]["innerError"]["request-id"]
    bad = requests.get(
        emulators.urls["graph"] + "/applications", headers={"Authorization": "Bearer nope"}, verify=emulators.ca_path
    )
    assert bad.status_code == 401


def test_graph_429_carries_retry_after(emulators):
    emulators.world.faults.inject("graph.create_application", status=429, retry_after=7)
    err = odata_error(emulators, lambda c: c.applications.post(new_app()))
    assert err.response_status_code == 429 and err.error.code == "TooManyRequests"
    assert err.response_headers["retry-after"] in ("7", {"7"})
