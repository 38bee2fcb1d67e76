"""requests against the Nylas v3 connector and v2 integration emulators."""

from __future__ import annotations

import base64

import requests


def v3(emulators, method: str, api_key: str, json=None) -> requests.Response:
    return requests.request(
        method,
        f"{emulators.env()['NYLAS_V3_API_US']}/v3/connectors/microsoft",
        json=json,
        headers={"Authorization": f"Bearer {api_key}"},
        verify=emulators.ca_path,
        timeout=10,
    )


def v2(emulators, method: str, client_id: str, client_secret: str, json=None) -> requests.Response:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return requests.request(
        method,
        f"{emulators.env()['NYLAS_V2_API_US']}/connect/integrations/microsoft",
        json=json,
        headers={"Authorization": f"Basic {basic}"},
        verify=emulators.ca_path,
        timeout=10,
    )


def entra_app_with_secret(emulators):
    app = emulators.world.graph.create_app(emulators.world.identity.client_id, {"displayName": "nylas"})
    _, secret = emulators.world.graph.add_password_direct(app.object_id, "rotator")
    return app, secret


def test_v3_get_before_the_connector_exists_is_not_found(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1")
    resp = v3(emulators, "GET", "key-1")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "api.not_found_error"
    assert resp.json()["request_id"]


def test_v3_patch_then_get_never_echoes_the_secret(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1", region="eu")
    emulators.world.nylas.add_v3_connector("app-1", "old-client", "old-secret")
    app, secret = entra_app_with_secret(emulators)
    body = {"settings": {"client_id": app.app_id, "client_secret": secret, "tenant": "t1"}, "scope": ["Mail.Read"]}
    patched = v3(emulators, "PATCH", "key-1", body)
    assert patched.status_code == 200
    data = patched.json()["data"]
    assert data == {
        "name": "Microsoft",
        "provider": "microsoft",
        "settings": {"client_id": app.app_id, "tenant": "t1"},
        "scope": ["Mail.Read"],
        "active_credential_id": emulators.world.nylas.apps["app-1"].active_credential_id,
    }
    assert secret not in patched.text and secret not in v3(emulators, "GET", "key-1").text
    assert emulators.world.nylas.current("app-1") == (app.app_id, secret)
    assert emulators.world.nylas_secret_works("app-1")
    [_, (when, client_id, hint)] = emulators.world.nylas.history("app-1")
    assert client_id == app.app_id and hint == secret[:3] and when.tzinfo is not None


def test_v3_patch_replaces_settings_wholesale(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1")
    emulators.world.nylas.add_v3_connector("app-1", "a0", "s0")
    v3(emulators, "PATCH", "key-1", {"settings": {"client_id": "a", "client_secret": "s1", "tenant": "t"}})
    v3(emulators, "PATCH", "key-1", {"settings": {"client_id": "b", "client_secret": "s2"}})
    assert v3(emulators, "GET", "key-1").json()["data"]["settings"] == {"client_id": "b", "tenant": "common"}
    assert [h[1] for h in emulators.world.nylas.history("app-1")] == ["a0", "a", "b"]


def test_v3_wrong_api_key_is_unauthorized(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1")
    emulators.world.nylas.add_v3_connector("app-1", "a0", "s0")
    resp = v3(emulators, "PATCH", "wrong", {"settings": {"client_id": "a", "client_secret": "s"}})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "api.authentication_error"
    assert [h[1] for h in emulators.world.nylas.history("app-1")] == ["a0"]


def test_v3_missing_client_secret_is_invalid_request(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1")
    emulators.world.nylas.add_v3_connector("app-1", "a0", "s0")
    resp = v3(emulators, "PATCH", "key-1", {"settings": {"client_id": "a"}})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "api.invalid_request_error"
    assert emulators.world.nylas.current("app-1") == ("a0", "s0")


def test_secret_works_tracks_the_entra_side(emulators):
    emulators.world.nylas.add_v3_app("app-1", "key-1")
    emulators.world.nylas.add_v3_connector("app-1", "a0", "s0")
    app, secret = entra_app_with_secret(emulators)
    v3(emulators, "PATCH", "key-1", {"settings": {"client_id": app.app_id, "client_secret": secret}})
    assert emulators.world.nylas_secret_works("app-1")
    emulators.world.graph.remove_password_direct(app.object_id, app.password_credentials[0].key_id)
    assert not emulators.world.nylas_secret_works("app-1")
    assert not emulators.world.nylas_secret_works("unknown-app")


def test_v2_patch_and_get(emulators):
    emulators.world.nylas.add_v2_app("nylas-client", "nylas-secret")
    app, secret = entra_app_with_secret(emulators)
    assert v2(emulators, "GET", "nylas-client", "nylas-secret").status_code == 404
    body = {
        "name": "Microsoft",
        "settings": {"client_id": app.app_id, "client_secret": secret},
        "redirect_uris": ["https://example.test/cb"],
    }
    patched = v2(emulators, "PATCH", "nylas-client", "nylas-secret", body)
    assert patched.status_code == 200 and secret not in patched.text
    got = v2(emulators, "GET", "nylas-client", "nylas-secret").json()
    assert got["settings"] == {"client_id": app.app_id} and got["redirect_uris"] == ["https://example.test/cb"]
    assert got["provider"] == "microsoft"
    assert emulators.world.nylas_secret_works("nylas-client")
    assert len(emulators.world.nylas.history("nylas-client")) == 1


def test_v2_wrong_credentials_are_unauthorized(emulators):
    emulators.world.nylas.add_v2_app("nylas-client", "nylas-secret")
    resp = v2(emulators, "PATCH", "nylas-client", "wrong", {"settings": {"client_id": "a", "client_secret": "b"}})
    assert resp.status_code == 401 and set(resp.json()) == {"message", "type"}


def test_v2_missing_client_id_is_invalid(emulators):
    emulators.world.nylas.add_v2_app("nylas-client", "nylas-secret")
    resp = v2(emulators, "PATCH", "nylas-client", "nylas-secret", {"settings": {"client_secret": "b"}})
    assert resp.status_code == 400 and resp.json()["type"] == "invalid_request_error"


def test_v2_429_carries_rate_limit_reset(emulators):
    emulators.world.nylas.add_v2_app("nylas-client", "nylas-secret")
    emulators.world.faults.inject("nylas.v2_patch_integration", status=429, retry_after=2)
    resp = v2(
        emulators, "PATCH", "nylas-client", "nylas-secret", {"settings": {"client_id": "a", "client_secret": "b"}}
    )
    assert resp.status_code == 429 and resp.headers["X-RateLimit-Reset"] == "2"
    assert set(resp.json()) == {"message", "type"}
    assert emulators.world.nylas.history("nylas-client") == []
