"""SecretClient (sync and aio) against the Key Vault emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.contract.contract_support import async_credential, async_secret_client, secret_client


def test_first_request_is_answered_with_the_challenge_then_authorised(emulators):
    client = secret_client(emulators)
    client.set_secret("first", "v")
    assert emulators.world.calls["keyvault.challenge"] >= 0  # the SDK caches challenges per vault
    assert emulators.world.calls["keyvault.set_secret"] == 1
    assert emulators.world.keyvault.value_of("first") == "v"


def test_challenge_names_the_emulated_authority(emulators):
    import requests

    resp = requests.get(emulators.urls["keyvault"] + "secrets/x?api-version=2026-04-01", verify=emulators.ca_path)
    assert resp.status_code == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer authorization=")
    assert f"{emulators.urls['entra']}/{emulators.world.entra.tenant_id}" in challenge
    assert 'resource="https://vault.azure.net"' in challenge
    assert resp.json()["error"]["code"] == "Unauthorized"
    assert emulators.world.calls["keyvault.challenge"] == 1


def test_set_get_versions_and_case_insensitive_names(emulators):
    client = secret_client(emulators)
    first = client.set_secret("Rotated-Secret", "one", content_type="text/plain", tags={"app": "a1"})
    second = client.set_secret("rotated-secret", "two")
    assert len(first.properties.version) == 32 and first.properties.version != second.properties.version
    assert client.get_secret("ROTATED-SECRET").value == "two"
    old = client.get_secret("rotated-secret", first.properties.version)
    assert old.value == "one" and old.properties.content_type == "text/plain" and old.properties.tags == {"app": "a1"}
    assert first.id == f"{emulators.urls['keyvault']}secrets/Rotated-Secret/{first.properties.version}"
    assert first.properties.recovery_level == "Recoverable"
    assert isinstance(first.properties.created_on, datetime)
    versions = {p.version for p in client.list_properties_of_secret_versions("rotated-secret")}
    assert versions == {first.properties.version, second.properties.version}


def test_attributes_round_trip_as_unix_seconds(emulators):
    client = secret_client(emulators)
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    stored = client.set_secret("with-exp", "v", expires_on=expires, not_before=expires - timedelta(days=1))
    assert stored.properties.expires_on == expires
    assert stored.properties.not_before == expires - timedelta(days=1)


def test_update_properties_changes_tags_content_type_and_enabled(emulators):
    client = secret_client(emulators)
    created = client.set_secret("upd", "v")
    updated = client.update_secret_properties(
        "upd", created.properties.version, tags={"k": "v"}, content_type="application/json", enabled=False
    )
    assert updated.tags == {"k": "v"} and updated.content_type == "application/json" and updated.enabled is False
    with pytest.raises(HttpResponseError) as err:
        client.get_secret("upd")
    assert err.value.status_code == 403
    latest = client.update_secret_properties("upd", enabled=True)  # no version: the latest
    assert latest.enabled is True


def test_missing_secret_is_resource_not_found_with_secret_not_found_code(emulators):
    client = secret_client(emulators)
    with pytest.raises(ResourceNotFoundError) as err:
        client.get_secret("nope")
    assert err.value.error.code == "SecretNotFound"
    assert "A secret with (name/id) nope was not found in this key vault" in err.value.message


def test_paging_over_sixty_secrets_with_page_size_seven(emulators):
    client = secret_client(emulators)
    for i in range(61):
        client.set_secret(f"page-{i:03d}", "v")
    emulators.world.reset_calls()
    names = [p.name for p in client.list_properties_of_secrets(max_page_size=7)]
    assert names == sorted(f"page-{i:03d}" for i in range(61))
    assert emulators.world.calls["keyvault.list_secrets"] == 9  # ceil(61 / 7)


def test_version_listing_pages(emulators):
    client = secret_client(emulators)
    for i in range(30):
        client.set_secret("many-versions", str(i))
    emulators.world.reset_calls()
    assert len(list(client.list_properties_of_secret_versions("many-versions"))) == 30
    assert emulators.world.calls["keyvault.list_versions"] == 2  # default page size 25


def test_empty_pages_that_carry_a_next_link_are_followed(emulators):
    # [K2]: a page may be {"value": [], "nextLink": ...}; only the absence of nextLink ends a listing.
    client = secret_client(emulators)
    for i in range(12):
        client.set_secret(f"sparse-{i:02d}", "v")
    for i in range(3):
        client.set_secret("sparse-00", f"v{i}")
    emulators.world.keyvault.empty_pages = True
    emulators.world.reset_calls()
    names = [p.name for p in client.list_properties_of_secrets(max_page_size=5)]
    assert names == [f"sparse-{i:02d}" for i in range(12)]
    assert emulators.world.calls["keyvault.list_secrets"] == 6  # 3 pages of secrets, each after an empty one
    versions = list(client.list_properties_of_secret_versions("sparse-00", max_page_size=3))
    assert len(versions) == 4 and emulators.world.calls["keyvault.list_versions"] == 4
    client.begin_delete_secret("sparse-11").wait()
    assert [d.name for d in client.list_deleted_secrets()] == ["sparse-11"]


def test_empty_page_shape(emulators):
    import requests

    from tests.contract.contract_support import credential

    secret_client(emulators).set_secret("only", "v")
    emulators.world.keyvault.empty_pages = True
    token = credential(emulators).get_token("https://vault.azure.net/.default").token
    url = emulators.urls["keyvault"] + "secrets?api-version=2026-04-01"
    first = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=emulators.ca_path).json()
    assert first["value"] == [] and first["nextLink"].startswith(emulators.urls["keyvault"] + "secrets?")
    assert "$skiptoken=" in first["nextLink"]
    second = requests.get(
        first["nextLink"], headers={"Authorization": f"Bearer {token}"}, verify=emulators.ca_path
    ).json()
    assert [i["id"].rsplit("/", 1)[1] for i in second["value"]] == ["only"] and second["nextLink"] is None
    emulators.world.reset()
    assert emulators.world.keyvault.empty_pages is False


def test_maxresults_over_25_is_bad_parameter(emulators):
    client = secret_client(emulators)
    client.set_secret("one", "v")
    with pytest.raises(HttpResponseError) as err:
        list(client.list_properties_of_secrets(max_page_size=26))
    assert err.value.status_code == 400 and err.value.error.code == "BadParameter"


@pytest.mark.parametrize(
    "name,value,tags",
    [
        ("bad_name", "v", None),
        ("x" * 128, "v", None),
        ("big", "x" * (25 * 1024 + 1), None),
        ("many-tags", "v", {f"t{i}": "v" for i in range(16)}),
        ("long-tag", "v", {"t": "x" * 257}),
    ],
    ids=["underscore", "128-chars", "over-25KB", "16-tags", "257-char-tag"],
)
def test_limits_are_bad_parameter(emulators, name, value, tags):
    client = secret_client(emulators)
    with pytest.raises(HttpResponseError) as err:
        client.set_secret(name, value, tags=tags)
    assert err.value.status_code == 400 and err.value.error.code == "BadParameter"


def test_limits_at_the_edge_are_accepted(emulators):
    client = secret_client(emulators)
    client.set_secret("x" * 127, "x" * (25 * 1024), tags={f"t{i}": "v" * 256 for i in range(15)})


def test_soft_delete_get_deleted_recover(emulators):
    client = secret_client(emulators)
    client.set_secret("soft", "keep-me")
    deleted = client.begin_delete_secret("soft").result()
    assert deleted.recovery_id == f"{emulators.urls['keyvault']}deletedsecrets/soft"
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=90)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("soft")
    assert client.get_deleted_secret("soft").name == "soft"
    assert [d.name for d in client.list_deleted_secrets()] == ["soft"]
    with pytest.raises(ResourceExistsError) as err:
        client.set_secret("soft", "reuse")
    assert err.value.status_code == 409 and "deleted but recoverable state" in err.value.message
    poller = client.begin_recover_deleted_secret("soft")
    poller.wait()
    assert poller.result().name == "soft"
    assert client.get_secret("soft").value == "keep-me"
    assert emulators.world.calls["keyvault.recover_deleted_secret"] == 1


def test_purge_is_forbidden_with_purge_protection(emulators):
    client = secret_client(emulators)
    client.set_secret("protected", "v")
    client.begin_delete_secret("protected").wait()
    with pytest.raises(HttpResponseError) as err:
        client.purge_deleted_secret("protected")
    assert err.value.status_code == 403 and err.value.error.code == "Forbidden"


def test_purge_without_purge_protection(emulators):
    emulators.world.keyvault.purge_protection = False
    client = secret_client(emulators)
    client.set_secret("purgeable", "v")
    assert client.begin_delete_secret("purgeable").result().properties.recovery_level == "Recoverable+Purgeable"
    client.purge_deleted_secret("purgeable")
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("purgeable")
    client.set_secret("purgeable", "again")


def test_deleted_secret_is_purged_by_the_vault_after_retention(emulators):
    client = secret_client(emulators)
    client.set_secret("old", "v")
    client.begin_delete_secret("old").wait()
    emulators.world.clock.advance(days=91)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("old")


def test_secret_client_retries_429_after_retry_after(emulators):
    client = secret_client(emulators)
    client.set_secret("throttled", "v")
    emulators.world.faults.inject("keyvault.get_secret", status=429, retry_after=0.2, times=2)
    assert client.get_secret("throttled").value == "v"
    assert emulators.world.calls["keyvault.get_secret"] == 3
    statuses = [s for r, _, _, s in emulators.world.call_log if r == "keyvault.get_secret"]
    assert statuses == [429, 429, 200]


def test_throttled_error_body_has_key_vault_format(emulators):
    import requests

    emulators.world.faults.inject("keyvault.challenge", status=429, retry_after=3)
    resp = requests.get(emulators.urls["keyvault"] + "secrets?api-version=2026-04-01", verify=emulators.ca_path)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json()["error"]["code"] == "Throttled"


def test_other_identities_are_forbidden(emulators):
    from azure.keyvault.secrets import SecretClient

    from tests.contract.contract_support import credential

    app = emulators.world.graph.add_foreign_app("stranger")
    _, secret = emulators.world.graph.add_password_direct(app.object_id)
    env = emulators.env()
    client = SecretClient(
        env["KEY_VAULT_URL"],
        credential(emulators, app.app_id, secret),
        verify_challenge_resource=False,
        connection_verify=env["CA_BUNDLE"],
    )
    with pytest.raises(HttpResponseError) as err:
        client.get_secret("anything")
    assert err.value.status_code == 403


def test_async_secret_client_follows_empty_pages(emulators):
    for i in range(8):
        secret_client(emulators).set_secret(f"aio-sparse-{i}", "v")
    emulators.world.keyvault.empty_pages = True

    async def scenario() -> tuple[list[str | None], int]:
        cred = async_credential(emulators)
        async with cred, async_secret_client(emulators, cred) as client:
            names = [p.name async for p in client.list_properties_of_secrets(max_page_size=3)]
            versions = [p async for p in client.list_properties_of_secret_versions("aio-sparse-0")]
            return names, len(versions)

    names, versions = asyncio.run(scenario())
    assert names == [f"aio-sparse-{i}" for i in range(8)] and versions == 1
    assert emulators.world.calls["keyvault.list_secrets"] == 6


def test_async_secret_client_covers_every_route(emulators):
    async def scenario() -> None:
        cred = async_credential(emulators)
        async with cred, async_secret_client(emulators, cred) as client:
            first = await client.set_secret("aio", "one", tags={"a": "1"})
            await client.set_secret("aio", "two")
            assert (await client.get_secret("aio")).value == "two"
            assert (await client.get_secret("aio", first.properties.version)).value == "one"
            await client.update_secret_properties("aio", first.properties.version, tags={"a": "2"})
            assert len([p async for p in client.list_properties_of_secret_versions("aio")]) == 2
            for i in range(10):
                await client.set_secret(f"aio-{i}", "v")
            assert len([p async for p in client.list_properties_of_secrets(max_page_size=7)]) == 11
            deleted = await client.delete_secret("aio")
            assert deleted.recovery_id.endswith("/deletedsecrets/aio")
            assert (await client.get_deleted_secret("aio")).name == "aio"
            assert [d.name async for d in client.list_deleted_secrets()] == ["aio"]
            recovered = await client.recover_deleted_secret("aio")
            assert recovered.name == "aio"
            with pytest.raises(ResourceNotFoundError) as err:
                await client.get_secret("missing")
            assert err.value.error.code == "SecretNotFound"

    asyncio.run(scenario())
    calls = emulators.world.calls
    for route in (
        "set_secret",
        "get_secret",
        "update_secret",
        "list_versions",
        "list_secrets",
        "delete_secret",
        "get_deleted_secret",
        "list_deleted_secrets",
        "recover_deleted_secret",
    ):
        assert calls[f"keyvault.{route}"] >= 1, route
