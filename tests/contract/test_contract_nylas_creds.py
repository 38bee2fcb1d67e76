"""Nylas v3: the Microsoft connector's lifecycle and its credentials API [N3]-[N9][NP]."""

from __future__ import annotations

import pytest
import requests

KEY = "nyk_key_1"
CONNECTOR = "/v3/connectors/microsoft"
CREDS = CONNECTOR + "/creds"
CREDENTIAL_KEYS = {"id", "name", "credential_type", "hashed_data", "created_at", "updated_at"}


def call(emulators, method: str, path: str, json=None, key: str = KEY, params=None) -> requests.Response:
    return requests.request(
        method,
        emulators.urls["nylas"] + path,
        json=json,
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        verify=emulators.ca_path,
        timeout=10,
    )


def connector_body(client_id: str = "client-1", secret: str = "secret-one-1", **extra):
    body = {
        "name": "Microsoft",
        "provider": "microsoft",
        "settings": {"client_id": client_id, "client_secret": secret, "tenant": "common"},
        "scope": ["https://graph.microsoft.com/Mail.Read"],
    }
    body.update(extra)
    return body


def cred_body(name: str = "tenant-acme", client_id: str = "client-2", secret: str = "secret-two-2", **data):
    return {
        "name": name,
        "credential_type": "connector",
        "credential_data": {"client_id": client_id, "client_secret": secret, **data},
    }


@pytest.fixture
def app(emulators):
    emulators.world.nylas.add_v3_app("nylas-1", KEY)
    return "nylas-1"


@pytest.fixture
def connected(emulators, app):
    emulators.world.nylas.add_v3_connector(app, "client-1", "secret-one-1")
    return app


def error_type(resp: requests.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"request_id", "error"} and body["request_id"]
    return resp.status_code, body["error"]["type"]


# ------------------------------------------------------------------ connector lifecycle [N3][N4][N9]


def test_a_new_v3_app_has_no_connector_until_post_creates_it(emulators, app):
    assert error_type(call(emulators, "GET", CONNECTOR)) == (404, "api.not_found_error")
    created = call(emulators, "POST", "/v3/connectors", connector_body())
    assert created.status_code == 201
    data = created.json()["data"]
    [primary] = emulators.world.nylas.credentials(app)
    assert data == {
        "name": "Microsoft",
        "provider": "microsoft",
        "settings": {"client_id": "client-1", "tenant": "common"},
        "scope": ["https://graph.microsoft.com/Mail.Read"],
        "active_credential_id": primary["id"],
    }
    assert primary["client_id"] == "client-1" and primary["credential_type"] == "connector"
    assert emulators.world.nylas.credential(app, primary["id"]) == ("client-1", "secret-one-1")
    assert emulators.world.nylas.current(app) == ("client-1", "secret-one-1")
    assert "secret-one-1" not in created.text
    got = call(emulators, "GET", CONNECTOR)
    assert got.status_code == 200 and got.json()["data"] == data


def test_a_second_connector_for_microsoft_is_refused(emulators, connected):
    resp = call(emulators, "POST", "/v3/connectors", connector_body("client-9", "secret-nine-9"))
    assert error_type(resp) == (400, "api.invalid_request_error")
    assert emulators.world.nylas.current(connected) == ("client-1", "secret-one-1")


def test_connector_post_needs_provider_and_client_pair(emulators, app):
    assert call(emulators, "POST", "/v3/connectors", {"settings": {"client_id": "c"}}).status_code == 400
    body = connector_body()
    del body["settings"]["client_secret"]
    assert error_type(call(emulators, "POST", "/v3/connectors", body)) == (400, "api.invalid_request_error")
    assert emulators.world.nylas.current(app) is None


def test_patch_on_a_missing_connector_is_404_and_creates_nothing(emulators, app):
    resp = call(emulators, "PATCH", CONNECTOR, {"settings": {"client_id": "c", "client_secret": "secret-s-s"}})
    assert error_type(resp) == (404, "api.not_found_error")
    assert emulators.world.nylas.current(app) is None and emulators.world.nylas.credentials(app) == []


def test_connector_patch_replaces_settings_and_the_primary_credential_with_them(emulators, connected):
    [primary] = emulators.world.nylas.credentials(connected)
    before = call(emulators, "GET", f"{CREDS}/{primary['id']}").json()["data"]
    emulators.world.clock.advance(seconds=5)
    resp = call(emulators, "PATCH", CONNECTOR, {"settings": {"client_id": "client-3", "client_secret": "secret-3-3"}})
    assert resp.status_code == 200 and resp.json()["data"]["settings"] == {"client_id": "client-3", "tenant": "common"}
    assert emulators.world.nylas.credential(connected, primary["id"]) == ("client-3", "secret-3-3")
    after = call(emulators, "GET", f"{CREDS}/{primary['id']}").json()["data"]
    assert after["hashed_data"] != before["hashed_data"] and after["updated_at"] >= before["updated_at"] + 5
    assert emulators.world.nylas.current(connected) == ("client-3", "secret-3-3")


def test_patching_the_primary_credential_moves_the_connector_settings(emulators, connected):
    [primary] = emulators.world.nylas.credentials(connected)
    body = {"credential_data": {"client_id": "client-4", "client_secret": "secret-4-4", "tenant": "t4"}}
    assert call(emulators, "PATCH", f"{CREDS}/{primary['id']}", body).status_code == 200
    settings = call(emulators, "GET", CONNECTOR).json()["data"]["settings"]
    assert settings == {"client_id": "client-4", "tenant": "t4"}
    assert emulators.world.nylas.current(connected) == ("client-4", "secret-4-4")
    assert [h[1] for h in emulators.world.nylas.history(connected)] == ["client-1", "client-4"]


def test_connector_patch_sets_the_active_credential(emulators, connected):
    other = call(emulators, "POST", CREDS, cred_body()).json()["data"]
    resp = call(emulators, "PATCH", CONNECTOR, {"active_credential_id": other["id"]})
    assert resp.status_code == 200 and resp.json()["data"]["active_credential_id"] == other["id"]
    assert emulators.world.nylas.current(connected) == ("client-1", "secret-one-1")  # settings untouched
    unknown = call(emulators, "PATCH", CONNECTOR, {"active_credential_id": "no-such-credential"})
    assert error_type(unknown) == (400, "api.invalid_request_error")


def test_deleting_the_connector_deletes_its_credentials(emulators, connected):
    assert call(emulators, "DELETE", CONNECTOR).json().keys() == {"request_id"}
    assert call(emulators, "GET", CONNECTOR).status_code == 404
    assert emulators.world.nylas.credentials(connected) == [] and emulators.world.nylas.current(connected) is None


# ------------------------------------------------------------------ credentials [N5]-[N8]


def test_create_credential_answers_201_with_the_credential_but_never_its_data(emulators, connected):
    resp = call(emulators, "POST", CREDS, cred_body(tenant="tenant-x"))
    assert resp.status_code == 201
    data = resp.json()["data"]
    assert set(data) == CREDENTIAL_KEYS and data["name"] == "tenant-acme" and data["credential_type"] == "connector"
    assert isinstance(data["created_at"], int) and data["created_at"] == data["updated_at"]
    assert "secret-two-2" not in resp.text and "client-2" not in resp.text and len(data["hashed_data"]) >= 32
    assert emulators.world.nylas.credential(connected, data["id"]) == ("client-2", "secret-two-2")


def test_create_with_the_same_parameters_returns_the_existing_credential(emulators, connected):
    first = call(emulators, "POST", CREDS, cred_body()).json()["data"]
    again = call(emulators, "POST", CREDS, cred_body())
    assert again.status_code == 201 and again.json()["data"]["id"] == first["id"]
    assert len(emulators.world.nylas.credentials(connected)) == 2  # primary + this one


def test_create_with_a_taken_name_and_other_data_is_refused(emulators, connected):
    call(emulators, "POST", CREDS, cred_body())
    resp = call(emulators, "POST", CREDS, cred_body(secret="another-secret"))
    assert error_type(resp) == (400, "api.invalid_request_error")
    [_, cred] = emulators.world.nylas.credentials(connected)
    assert emulators.world.nylas.credential(connected, cred["id"]) == ("client-2", "secret-two-2")


@pytest.mark.parametrize(
    "body",
    [
        {"credential_type": "connector", "credential_data": {"client_id": "c", "client_secret": "s"}},
        {"name": "", "credential_type": "connector", "credential_data": {"client_id": "c", "client_secret": "s"}},
        {"name": "n", "credential_type": "oauth", "credential_data": {"client_id": "c", "client_secret": "s"}},
        {"name": "n", "credential_type": "connector", "credential_data": {"client_id": "c"}},
        {"name": "n", "credential_type": "connector"},
    ],
    ids=["no-name", "empty-name", "bad-type", "no-secret", "no-data"],
)
def test_create_credential_validates_name_type_and_data(emulators, connected, body):
    assert error_type(call(emulators, "POST", CREDS, body)) == (400, "api.invalid_request_error")


def test_adminconsent_and_serviceaccount_types_are_accepted(emulators, connected):
    admin = {"name": "admin", "credential_type": "adminconsent", "credential_data": {"tenant": "t"}}
    assert call(emulators, "POST", CREDS, admin).status_code == 201
    sa = {"name": "sa", "credential_type": "serviceaccount", "credential_data": {"private_key": "pk-secret-123"}}
    resp = call(emulators, "POST", CREDS, sa)
    assert resp.status_code == 201 and "pk-secret-123" not in resp.text
    assert "pk-secret-123" in emulators.world.secret_values()


def test_list_pages_by_offset_without_a_cursor_newest_first(emulators, connected):
    names = [f"cred-{i:02d}" for i in range(12)]
    for name in names:
        call(emulators, "POST", CREDS, cred_body(name=name, client_id=name))
    first = call(emulators, "GET", CREDS)
    body = first.json()
    assert set(body) == {"request_id", "data", "limit", "offset"} and (body["limit"], body["offset"]) == (10, 0)
    assert [c["name"] for c in body["data"]] == list(reversed(names))[:10]  # created_at desc
    rest = call(emulators, "GET", CREDS, params={"limit": 10, "offset": 10}).json()["data"]
    assert [c["name"] for c in rest] == [*list(reversed(names))[10:], "primary"]
    ascending = call(emulators, "GET", CREDS, params={"order_by": "asc", "limit": 3}).json()["data"]
    assert [c["name"] for c in ascending] == ["primary", "cred-00", "cred-01"]


def test_list_sorts_by_updated_at(emulators, connected):
    made = [call(emulators, "POST", CREDS, cred_body(name=n, client_id=n)).json()["data"] for n in ("a", "b")]
    emulators.world.clock.advance(seconds=10)
    call(emulators, "PATCH", f"{CREDS}/{made[0]['id']}", {"name": "a2"})
    page = call(emulators, "GET", CREDS, params={"sort_by": "updated_at", "limit": 1}).json()["data"]
    assert page[0]["name"] == "a2"


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 201}, {"limit": "x"}, {"offset": -1}, {"sort_by": "name"}, {"order_by": "up"}]
)
def test_list_refuses_bad_paging_and_sorting(emulators, connected, params):
    assert error_type(call(emulators, "GET", CREDS, params=params)) == (400, "api.invalid_request_error")


def test_list_takes_up_to_200(emulators, connected):
    body = call(emulators, "GET", CREDS, params={"limit": 200}).json()
    assert body["limit"] == 200 and len(body["data"]) == 1


def test_patch_replaces_credential_data_whole_and_renames(emulators, connected):
    cred = call(emulators, "POST", CREDS, cred_body(tenant="tenant-x")).json()["data"]
    body = {"name": "renamed", "credential_data": {"client_id": "client-5", "client_secret": "secret-5-5"}}
    resp = call(emulators, "PATCH", f"{CREDS}/{cred['id']}", body)
    assert resp.status_code == 200 and set(resp.json()) == {"request_id", "data"}
    data = resp.json()["data"]
    assert data["name"] == "renamed" and data["id"] == cred["id"] and "secret-5-5" not in resp.text
    held = emulators.world.nylas.apps[connected].credentials[cred["id"]]
    assert held.data == {"client_id": "client-5", "client_secret": "secret-5-5"}  # tenant gone: replaced whole
    assert emulators.world.nylas.current(connected) == ("client-1", "secret-one-1")  # not the primary
    half = call(emulators, "PATCH", f"{CREDS}/{cred['id']}", {"credential_data": {"client_id": "only-id"}})
    assert error_type(half) == (400, "api.invalid_request_error")
    taken = call(emulators, "PATCH", f"{CREDS}/{cred['id']}", {"name": "primary"})
    assert error_type(taken) == (400, "api.invalid_request_error")


def test_get_and_delete_a_credential_then_it_is_404(emulators, connected):
    cred = call(emulators, "POST", CREDS, cred_body()).json()["data"]
    got = call(emulators, "GET", f"{CREDS}/{cred['id']}")
    assert got.status_code == 200 and got.json()["data"] == cred
    deleted = call(emulators, "DELETE", f"{CREDS}/{cred['id']}")
    assert deleted.status_code == 200 and set(deleted.json()) == {"request_id"}
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        assert error_type(call(emulators, method, f"{CREDS}/{cred['id']}", body)) == (404, "api.not_found_error")
    assert emulators.world.nylas.credential(connected, cred["id"]) is None


def test_the_active_credential_cannot_be_deleted(emulators, connected):
    [primary] = emulators.world.nylas.credentials(connected)
    assert error_type(call(emulators, "DELETE", f"{CREDS}/{primary['id']}")) == (400, "api.invalid_request_error")
    other = call(emulators, "POST", CREDS, cred_body()).json()["data"]
    call(emulators, "PATCH", CONNECTOR, {"active_credential_id": other["id"]})
    assert call(emulators, "DELETE", f"{CREDS}/{primary['id']}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", CREDS), ("POST", CREDS), ("GET", CREDS + "/x"), ("PATCH", CREDS + "/x"), ("DELETE", CREDS + "/x")],
)
def test_credential_routes_without_a_connector_are_404(emulators, app, method, path):
    assert error_type(call(emulators, method, path, cred_body() if method != "GET" else None)) == (
        404,
        "api.not_found_error",
    )


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_credential_routes_need_the_api_key(emulators, connected, method):
    resp = call(emulators, method, CREDS, cred_body(), key="wrong-key")
    assert error_type(resp) == (401, "api.authentication_error")
