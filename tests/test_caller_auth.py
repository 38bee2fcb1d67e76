"""Callers sign in with Entra ID (blueprints/caller_auth.py): every HTTP route wants an access token for
the service's API holding the route's app role, and refuses everything else before any outside call.

The service runs with ``CALLER_AUTH=entra`` against the HTTPS emulators. Tokens come from the Entra
emulator over HTTPS with real clients: azure-identity's ``ClientSecretCredential`` (client
credentials for ``<Application ID URI>/.default``) for apps, the control API for a signed-in
person's token. Each decorated function is called as the Functions host calls it.

For every route: no token, a token for another API, a token lacking the role (403 naming it), a
forged token (another key), an expired token, a token of another directory and a token that is no
JWT are refused, each making no outside call (the emulated world's request log stays empty, nothing
is queued); with the role, the route works, and what it writes names the caller (``requested-by``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import jwt
import pytest
import requests
from azure.identity import ClientSecretCredential
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprints import caller_auth
from blueprints.caller_auth import (
    ROTATIONS_OPERATE,
    TENANTS_PROVISION,
    TENANTS_READ,
    TokenValidator,
    audience_forms,
    forget_validators,
    route_auth_level,
)
from blueprints.http_api import (
    confirm_rotation,
    get_tenant_http,
    list_tenants_http,
    provision_tenant,
    retire_tenant,
    rotate_tenant,
    update_tenant,
)
from core.audit import REQUESTED_BY_TAG, acting_for, current_caller, keep_requester, stamp, user_identity
from core.record import TAG_NAMES
from core.settings import Settings, SettingsError
from devenv.wiring import local_env, local_services
from tests.support import drain_queue, peek_requests, register_nylas, response_json, tenant_body
from tests.test_openapi import assert_documented

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL = "https://func.example/api/tenants"
ANOTHER_DIRECTORY = "0c9f4a71-5e3d-4b2a-9c8d-7e6f5a4b3c2d"


@dataclass(frozen=True)
class Route:
    operation: str
    handler: Callable[[func.HttpRequest], func.HttpResponse]
    method: str
    path: str
    role: str
    params: tuple[tuple[str, str], ...] = ()
    body: bool | dict[str, Any] = False  # True: a provisioning body; a dict: that body

    def request(self, token: str | None, tenant: str = "acme", body: Any = None) -> func.HttpRequest:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        path = self.path.replace("{tenant}", tenant)
        default = (
            self.body if isinstance(self.body, dict) else (tenant_body(tenant, "v3-connector") if self.body else None)
        )
        payload = body if body is not None else default
        return func.HttpRequest(
            method=self.method,
            url=URL + path,
            headers=headers,
            params={k: v.replace("{tenant}", tenant) for k, v in self.params},
            route_params={"tenant": tenant} if "{tenant}" in self.path else {},
            body=json.dumps(payload).encode() if payload is not None else b"",
        )

    def __call__(self, token: str | None, tenant: str = "acme", body: Any = None) -> func.HttpResponse:
        response: func.HttpResponse = self.handler(self.request(token, tenant, body))
        return response


ROUTES = [
    Route("provision_tenant", provision_tenant, "POST", "", TENANTS_PROVISION, body=True),
    Route("list_tenants", list_tenants_http, "GET", "", TENANTS_READ),
    Route("get_tenant", get_tenant_http, "GET", "/{tenant}", TENANTS_READ),
    Route(
        "update_tenant",
        update_tenant,
        "PATCH",
        "/{tenant}",
        TENANTS_PROVISION,
        body={"branding": {"privacyStatementUrl": "https://contoso.example/privacy"}},
    ),
    Route("retire_tenant", retire_tenant, "DELETE", "/{tenant}", TENANTS_PROVISION, (("confirm", "{tenant}"),)),
    Route("rotate_tenant", rotate_tenant, "POST", "/{tenant}/rotate", ROTATIONS_OPERATE),
    Route("confirm_rotation", confirm_rotation, "POST", "/{tenant}/rotation/confirm", ROTATIONS_OPERATE),
]
ROUTE = {r.operation: r for r in ROUTES}


# --- the service, signed-in callers and their tokens -------------------------------------------


@pytest.fixture
def api(emulators):
    return emulators.world.caller_api


@pytest.fixture
def env(emulators, azurite, api):
    """The service as in Azure: CALLER_AUTH=entra, the API's Application ID URI as the audience."""
    return local_env(emulators, azurite.connection_string, CALLER_AUTH="entra", CALLER_AUTH_AUDIENCE=api.identifier_uri)


class Tokens:
    """Gets access tokens for the service's API from the Entra emulator, over HTTPS."""

    def __init__(self, emulators) -> None:
        self.emulators = emulators
        self.api = emulators.world.caller_api

    def app(self, *roles: str, name: str = "ops-automation") -> str:
        """Client credentials of a registered app that holds ``roles`` (azure-identity, as a caller would)."""
        client_id, secret = self.api.add_client(name, *roles)
        return self.app_of(client_id, secret)

    def app_of(self, client_id: str, secret: str) -> str:
        credential = ClientSecretCredential(
            self.emulators.world.entra.tenant_id,
            client_id,
            secret,
            authority=self.emulators.urls["entra"],
            connection_verify=self.emulators.ca_path,
            disable_instance_discovery=True,
        )
        try:
            return credential.get_token(f"{self.api.identifier_uri}/.default").token
        finally:
            credential.close()

    def user(self, email: str = "alice@emulated.onmicrosoft.com", *roles: str, **options: Any) -> str:
        """A signed-in person's token (the control API: the emulator has no password page)."""
        response = requests.post(
            f"{self.emulators.urls['control']}/caller-api/user-tokens",
            json={"email": email, "roles": list(roles), **options},
            verify=self.emulators.ca_path,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture
def tokens(emulators) -> Tokens:
    return Tokens(emulators)


@pytest.fixture
def warm(svc, tokens, emulators):
    """One authorized request first, so the service holds the directory's keys (as a running app
    does after its first call); then the world's request log starts empty."""
    response = ROUTE["list_tenants"](tokens.app(TENANTS_READ, name="warm-up"))
    assert response.status_code == 200, response.get_body()
    emulators.world.reset_calls()


def forged(token: str, **changes: Any) -> str:
    """The same claims (and kid), signed with a key that is not the directory's."""
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    header = jwt.get_unverified_header(token)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"]})


def refusing_token(kind: str, route: Route, tokens: Tokens) -> str | None:
    other_roles = [r for r in (TENANTS_READ, TENANTS_PROVISION, ROTATIONS_OPERATE) if r != route.role]
    if kind == "none":
        return None
    if kind == "wrong-audience":  # signed by the directory, for another API
        return tokens.user("alice@emulated.onmicrosoft.com", route.role, audience="api://someone-elses-api")
    if kind == "lacking-role":
        return tokens.app(*other_roles)
    if kind == "forged":
        return forged(tokens.user("mallory@emulated.onmicrosoft.com"), roles=[route.role])
    if kind == "expired":  # issued two hours ago, lived one
        return tokens.user("alice@emulated.onmicrosoft.com", route.role, age_seconds=7200)
    if kind == "another-directory":
        return tokens.user("alice@emulated.onmicrosoft.com", route.role, tenant=ANOTHER_DIRECTORY)
    if kind == "not-a-jwt":
        return "definitely-not-a-token"
    raise AssertionError(kind)


REFUSALS = {
    "none": (401, None, "sign in"),
    "wrong-audience": (401, "invalid_token", "another API (aud)"),
    "lacking-role": (403, "insufficient_scope", "needs the app role"),
    "forged": (401, "invalid_token", "signature is not valid"),
    "expired": (401, "invalid_token", "expired"),
    "another-directory": (401, "invalid_token", "(iss)"),
    "not-a-jwt": (401, "invalid_token", "not a JWT"),
}


# --- every route refuses every bad token, before any outside call --------------------------------


@pytest.mark.parametrize("kind", sorted(REFUSALS))
@pytest.mark.parametrize("route", ROUTES, ids=[r.operation for r in ROUTES])
def test_every_route_refuses_a_bad_token_before_any_outside_call(svc, emulators, tokens, api, warm, route, kind):
    token = refusing_token(kind, route, tokens)
    world = emulators.world
    if route.body:
        register_nylas(emulators, tenant_body("acme", "v3-connector"))
    world.reset_calls()
    vault_before = world.keyvault.snapshot()

    response = route(token)

    status, error, words = REFUSALS[kind]
    assert response.status_code == status, response.get_body()
    body = assert_documented(route.operation, response, body_schema="Error")["error"]
    assert body["code"] == ("unauthorized" if status == 401 else "forbidden")
    assert words in body["message"]
    challenge = response.headers["WWW-Authenticate"]
    entra = emulators.urls["entra"]
    assert challenge.startswith(
        f'Bearer realm="", authorization_uri="{entra}/{world.entra.tenant_id}/oauth2/v2.0/authorize", '
        f'client_id="{api.app_id}"'
    )
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)
    if status == 403:
        assert body["requiredRole"] == route.role
        assert route.role in body["message"]
    else:
        assert body["field"] == "Authorization"
    # Nothing reached Entra, Graph, Key Vault or Nylas (their own request log), nor the queue.
    assert world.call_log == []
    assert world.keyvault.snapshot() == vault_before
    assert peek_requests(svc) == []
    if token is not None:
        assert token not in response.get_body().decode()


# --- with the role, each route works, and the writes name the caller ------------------------------


def latest_tags(emulators, tenant: str) -> dict[str, str]:
    return dict(emulators.world.keyvault.secrets[f"nylas-entra-{tenant}"].latest.tags or {})


def identity_of(token: str, kind: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    if kind == "user":
        return f"user:{claims['preferred_username']} oid:{claims['oid']}"
    return f"app:{claims['azp']} oid:{claims['oid']}"


def provisioned(route_response: func.HttpResponse, svc) -> dict[str, Any]:
    assert route_response.status_code in (201, 202), route_response.get_body()
    drain_queue(svc)  # provisioning may finish through the queue (verification, Nylas)
    out: dict[str, Any] = response_json(route_response)
    return out


def test_with_the_role_every_route_works_and_every_write_names_the_caller(svc, emulators, tokens, caplog):
    world = emulators.world
    alice = tokens.user("alice@emulated.onmicrosoft.com", TENANTS_PROVISION, TENANTS_READ)
    operator_id, operator_secret = world.caller_api.add_client("rotation-operator", ROTATIONS_OPERATE)
    operator = tokens.app_of(operator_id, operator_secret)
    reader = tokens.app(TENANTS_READ, name="dashboard")
    body = tenant_body("initech", "manual")  # manual: confirm has something to confirm
    register_nylas(emulators, body)
    alice_is = identity_of(alice, "user")
    operator_is = identity_of(operator, "app")
    assert alice_is == user_identity(
        "alice@emulated.onmicrosoft.com", world.entra.user_for_hint("alice@emulated.onmicrosoft.com").object_id
    )
    assert operator_is == f"app:{operator_id} oid:{world.graph.sp_by_app_id(operator_id).object_id}"

    # Provision as alice: the version the request writes says she asked.
    response = ROUTE["provision_tenant"](alice, "initech", body)
    assert response.status_code in (201, 202), response.get_body()
    assert latest_tags(emulators, "initech")[REQUESTED_BY_TAG] == alice_is
    handler_records = [r for r in caplog.records if r.name == "http" and "initech" in r.getMessage()]
    assert handler_records and all(getattr(r, "requested_by", "") == alice_is for r in handler_records)
    authorized = [r for r in caplog.records if r.name == "http.auth" and "authorized" in r.getMessage()]
    assert [getattr(r, "requested_by", "") for r in authorized] == [alice_is]
    assert current_caller() == ""  # only for the request
    drain_queue(svc)  # the follow-up (verification, Nylas) runs for alice too
    assert latest_tags(emulators, "initech")[REQUESTED_BY_TAG] == alice_is

    listed = ROUTE["list_tenants"](reader)
    assert listed.status_code == 200 and response_json(listed)["count"] == 1
    got = ROUTE["get_tenant"](reader, "initech")
    assert got.status_code == 200 and response_json(got)["rotationState"] == "awaiting-confirmation"

    # Confirm as the operator app: the version it re-tags names the app.
    confirmed = ROUTE["confirm_rotation"](operator, "initech")
    assert confirmed.status_code == 200, confirmed.get_body()
    assert latest_tags(emulators, "initech")[REQUESTED_BY_TAG] == operator_is

    # Rotate as the operator: the queue function writes the new version on the operator's behalf.
    before = {v.version for v in world.keyvault.secrets["nylas-entra-initech"].versions}
    rotated = ROUTE["rotate_tenant"](operator, "initech")
    assert rotated.status_code == 202, rotated.get_body()
    drain_queue(svc)
    versions = world.keyvault.secrets["nylas-entra-initech"].versions
    written = [v for v in versions if v.version not in before]
    assert written, "the rotation wrote no version"
    assert [(v.tags or {}).get(REQUESTED_BY_TAG) for v in written] == [operator_is] * len(written)

    # Retire as alice: the version marked retiring names her (the secret is soft-deleted last).
    retired = ROUTE["retire_tenant"](alice, "initech")
    assert retired.status_code == 200, retired.get_body()
    gone = world.keyvault.deleted["nylas-entra-initech"].entry.latest
    assert (gone.tags or {})[REQUESTED_BY_TAG] == alice_is
    for token in (alice, operator, reader):  # an identity, never token content
        assert all(token not in str(v.tags) for v in versions)


def test_a_provision_by_an_app_tags_its_version_and_the_real_secret_client_reads_it(svc, emulators, tokens):
    token = tokens.app(TENANTS_PROVISION, name="provisioner")
    body = tenant_body("acme", "v3-connector")
    register_nylas(emulators, body)

    provisioned(ROUTE["provision_tenant"](token, "acme", body), svc)

    secret = svc.vault.client.get_secret("nylas-entra-acme")  # the real SecretClient, over HTTPS
    assert secret.properties.tags[REQUESTED_BY_TAG] == identity_of(token, "app")
    assert len(secret.properties.tags) <= 15


def test_a_v1_token_from_the_sts_windows_net_issuer_is_accepted(svc, emulators, tokens, api):
    api.token_version = 1  # the API registration's requestedAccessTokenVersion
    token = tokens.app(TENANTS_READ)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == f"https://sts.windows.net/{emulators.world.entra.tenant_id}/"
    assert (claims["ver"], claims["aud"]) == ("1.0", api.identifier_uri)

    assert ROUTE["list_tenants"](token).status_code == 200


def test_a_v1_issuer_on_a_v2_token_is_refused(svc, emulators, tokens, api, warm):
    token = tokens.user("alice@emulated.onmicrosoft.com", TENANTS_READ)
    claims = jwt.decode(token, options={"verify_signature": False})
    with_v1_issuer = re_signed(emulators, claims | {"iss": f"https://sts.windows.net/{claims['tid']}/"})

    response = ROUTE["list_tenants"](with_v1_issuer)

    assert response.status_code == 401
    assert "(iss)" in response_json(response)["error"]["message"]


def re_signed(emulators, claims: dict[str, Any]) -> str:
    """Claims signed with the directory's own key (what only Entra could do): to show a claim check
    refuses on its own, not the signature."""
    key = emulators.world.caller_api._active_key()
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


@pytest.mark.parametrize("audience", ["client-id", "uri-with-slash", "uri-other-case"])
def test_both_forms_of_the_audience_are_accepted(svc, emulators, tokens, api, audience):
    value = {
        "client-id": api.app_id,
        "uri-with-slash": api.identifier_uri + "/",
        "uri-other-case": api.identifier_uri.upper().replace("API://", "api://"),
    }[audience]
    token = tokens.user("alice@emulated.onmicrosoft.com", TENANTS_READ, audience=value)

    assert ROUTE["list_tenants"](token).status_code == 200


def test_the_audience_setting_may_name_the_client_id_alone_and_v1_uri_tokens_still_pass():
    forms = audience_forms(["6E1F3C2A-9B7D-4E8F-A1C2-3D4E5F6A7B8C"])
    assert forms == {
        "6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c",
        "api://6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c",
        "api://6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c/",
    }
    custom = audience_forms(["api://nylas-rotator", "6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c"])
    assert {"api://nylas-rotator", "api://nylas-rotator/", "6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c"} <= custom
    assert "nylas-rotator" not in custom  # a custom URI implies no client id


def test_a_token_an_app_holds_without_any_role_is_forbidden_and_assignment_required_refuses_it_a_token(
    svc, emulators, tokens, api
):
    token = tokens.app(name="no-roles")  # Entra's default: a token, with no roles claim
    assert "roles" not in jwt.decode(token, options={"verify_signature": False})
    response = ROUTE["list_tenants"](token)
    assert response.status_code == 403
    assert response_json(response)["error"]["requiredRole"] == TENANTS_READ

    api.assignment_required = True
    client_id, secret = api.add_client("not-assigned")
    with pytest.raises(Exception, match="AADSTS501051"):
        tokens.app_of(client_id, secret)


@pytest.mark.parametrize(
    "forgery", ["same-kid-other-key", "unknown-kid", "alg-none", "hs256-with-the-public-key", "roles-added"]
)
def test_forged_tokens_are_refused(svc, emulators, tokens, warm, forgery):
    genuine = tokens.user("mallory@emulated.onmicrosoft.com")  # no roles
    claims = jwt.decode(genuine, options={"verify_signature": False}) | {"roles": [TENANTS_READ]}
    kid = jwt.get_unverified_header(genuine)["kid"]
    if forgery == "same-kid-other-key":
        token = forged(genuine, roles=[TENANTS_READ])
    elif forgery == "unknown-kid":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "made-up-kid"})
    elif forgery == "alg-none":
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    elif forgery == "hs256-with-the-public-key":  # the published key used as an HMAC secret
        jwk = emulators.world.caller_api.jwks()["keys"][0]
        pem = jwt.PyJWK(jwk).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode())
        signing_input = header.rstrip(b"=") + b"." + payload.rstrip(b"=")
        signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
        token = (signing_input + b"." + signature).decode()
    else:  # the genuine signature over other claims
        head, _, genuine_signature = genuine.split(".")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        token = f"{head}.{body}.{genuine_signature}"
    emulators.world.reset_calls()

    response = ROUTE["list_tenants"](token)

    assert response.status_code == 401, response.get_body()
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # An unknown kid may fetch the keys again (at most once every 5 minutes); nothing else is called.
    assert {route for route, *_ in emulators.world.call_log} <= ({"entra.jwks"} if forgery == "unknown-kid" else set())


def test_a_cold_service_refuses_missing_expired_and_foreign_tokens_without_fetching_keys(svc, emulators, tokens):
    expired = tokens.user("alice@emulated.onmicrosoft.com", TENANTS_READ, age_seconds=7200)
    foreign = tokens.user("alice@emulated.onmicrosoft.com", TENANTS_READ, audience="api://another")
    forget_validators()
    emulators.world.reset_calls()

    for token in (None, expired, foreign, "x.y.z"):
        assert ROUTE["list_tenants"](token).status_code == 401

    assert emulators.world.call_log == []


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


JWT_LIKE = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda h, p, sig: f"{segment(h)}.{segment(p)}.{segment(sig)}",
        st.one_of(st.binary(max_size=60), st.just(b'{"alg":"RS256","kid":"x"}'), st.just(b'{"alg":"none"}')),
        st.one_of(
            st.binary(max_size=120),
            st.builds(
                lambda d: json.dumps(d).encode(),
                st.dictionaries(
                    st.sampled_from(["aud", "iss", "exp", "ver", "tid", "oid", "roles"]),
                    st.one_of(st.integers(), st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3)),
                ),
            ),
        ),
        st.binary(max_size=300),
    ),
)


def test_whatever_the_authorization_header_says_a_non_token_is_a_documented_401_that_calls_nothing(
    svc, emulators, warm
):
    seen = []

    @settings(
        max_examples=300,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(scheme=st.sampled_from(["Bearer ", "bearer  ", "Basic ", "", "Bearer"]), token=JWT_LIKE)
    def run(scheme: str, token: str) -> None:
        emulators.world.reset_calls()
        request = ROUTE["list_tenants"].request(None)
        request = func.HttpRequest(
            method="GET",
            url=request.url,
            headers={"Authorization": scheme + token},
            params={},
            route_params={},
            body=b"",
        )
        response = list_tenants_http(request)
        seen.append(response.status_code)
        assert response.status_code == 401, response.get_body()
        assert_documented("list_tenants", response, body_schema="Error")
        assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
        assert emulators.world.call_log == []

    run()
    assert len(seen) >= 300


# --- the directory's keys: cached, fetched again for a new kid, at a bounded pace ------------------


def validator(emulators, api, clock: list[float], **options: Any) -> TokenValidator:
    return TokenValidator(
        emulators.urls["entra"],
        emulators.world.entra.tenant_id,
        [api.identifier_uri],
        ca_bundle=emulators.ca_path,
        clock=lambda: clock[0],
        **options,
    )


def test_keys_are_cached_and_a_rolled_key_is_fetched_once_it_signs(emulators, tokens, api):
    clock = [1000.0]
    check = validator(emulators, api, clock)
    world = emulators.world
    first = tokens.user("alice@emulated.onmicrosoft.com", TENANTS_READ)
    world.reset_calls()
    check.validate(first)
    check.validate(first)
    assert (world.calls["entra.openid_configuration"], world.calls["entra.jwks"]) == (1, 1)

    api.rotate_signing_key()  # Entra rolls its key; tokens are signed with the new one from now on
    rolled = tokens.user("bob@emulated.onmicrosoft.com", TENANTS_READ)
    clock[0] += 301
    assert check.validate(rolled).roles == {TENANTS_READ}
    assert world.calls["entra.jwks"] == 2
    assert check.validate(first).identity.startswith("user:alice@")  # the old key is still published


def test_made_up_kids_fetch_the_keys_at_most_once_every_five_minutes(emulators, tokens, api):
    clock = [1000.0]
    check = validator(emulators, api, clock)
    check.validate(tokens.user("alice@emulated.onmicrosoft.com"))
    genuine = tokens.user("mallory@emulated.onmicrosoft.com")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    emulators.world.reset_calls()

    for i in range(20):
        clock[0] += 10
        token = jwt.encode(claims, other, algorithm="RS256", headers={"kid": f"kid-{i}"})
        with pytest.raises(caller_auth.Refused):
            check.validate(token)

    assert emulators.world.calls["entra.jwks"] <= 1  # 200 s: one refetch at most, not twenty


def test_the_keys_unreachable_on_a_cold_start_is_a_503_not_a_401(svc, emulators, tokens):
    token = tokens.app(TENANTS_READ)
    forget_validators()
    emulators.world.faults.inject("entra.jwks", status=503, times=10)

    response = ROUTE["list_tenants"](token)

    assert response.status_code == 503
    error = response_json(response)["error"]
    assert (error["dependency"], error["retryable"]) == ("entra-id", True)


# --- settings and the Functions host's key check ---------------------------------------------------

BASE = {"AZURE_TENANT_ID": "7f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b", "KEY_VAULT_URL": "https://kv.vault.azure.net/"}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"CALLER_AUTH": "entra"}, "CALLER_AUTH_AUDIENCE"),
        ({"CALLER_AUTH": "easy-auth"}, "CALLER_AUTH"),
        ({"CALLER_AUTH": "entra", "CALLER_AUTH_AUDIENCE": "my api"}, "CALLER_AUTH_AUDIENCE"),
        ({"CALLER_AUTH": "entra", "CALLER_AUTH_AUDIENCE": "http://api.example"}, "CALLER_AUTH_AUDIENCE"),
        ({"CALLER_AUTH_AUDIENCE": "api://x", "CALLER_AUTH_TENANT_ID": "common"}, "CALLER_AUTH_TENANT_ID"),
        ({"CALLER_AUTH_AUDIENCE": "api://x", "CALLER_AUTH_TENANT_ID": "not a tenant"}, "CALLER_AUTH_TENANT_ID"),
    ],
)
def test_a_caller_auth_setting_that_is_wrong_is_refused_at_startup_naming_it(values, named):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, **values})
    assert named in str(refused.value)


def test_caller_auth_settings_are_read_and_the_directory_defaults_to_the_services():
    read = Settings.from_env(
        {
            **BASE,
            "CALLER_AUTH": " Entra ",
            "CALLER_AUTH_AUDIENCE": "api://nylas-rotator, 6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c",
        }
    )
    assert read.caller_auth == "entra"
    assert read.caller_auth_audiences == ("api://nylas-rotator", "6e1f3c2a-9b7d-4e8f-a1c2-3d4e5f6a7b8c")
    assert read.caller_auth_tenant_id == BASE["AZURE_TENANT_ID"]
    assert Settings.from_env({**BASE, "CALLER_AUTH_TENANT_ID": "contoso.onmicrosoft.com"}).caller_auth_tenant_id == (
        "contoso.onmicrosoft.com"
    )
    assert Settings.from_env({**BASE, "CALLER_AUTH": "function-key"}).caller_auth == "function-key"
    # Left unset (the default, entra) without an audience: startup goes on; the API fails closed.
    unset = Settings.from_env(BASE)
    assert (unset.caller_auth, unset.caller_auth_audiences) == ("entra", ())
    with pytest.raises(SettingsError, match="CALLER_AUTH_AUDIENCE"):
        unset.require_caller_auth()


def test_entra_by_default_without_an_audience_answers_503_naming_the_setting_and_calls_nothing(
    emulators, azurite, alerts, tokens
):
    from bootstrap import use_services

    services = local_services(emulators, local_env(emulators, azurite.connection_string, CALLER_AUTH=""), alerts)
    use_services(services)
    try:
        token = tokens.app(TENANTS_READ)
        emulators.world.reset_calls()
        response = ROUTE["list_tenants"](token)
    finally:
        use_services(None)
        services.graph.close()
    assert response.status_code == 503
    error = response_json(response)["error"]
    assert error["code"] == "misconfigured" and "CALLER_AUTH_AUDIENCE" in error["message"]
    assert emulators.world.call_log == []


def test_function_key_settings_behind_anonymous_routes_answer_503(emulators, monkeypatch, azurite, alerts):
    from bootstrap import use_services

    services = local_services(emulators, local_env(emulators, azurite.connection_string), alerts)
    use_services(services)
    monkeypatch.setattr(caller_auth, "ROUTE_AUTH_LEVEL", func.AuthLevel.ANONYMOUS)
    try:
        response = ROUTE["list_tenants"](None)
    finally:
        use_services(None)
        services.graph.close()
    assert response.status_code == 503
    assert "function-key" in response_json(response)["error"]["message"]


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (None, func.AuthLevel.FUNCTION),  # unset: the host keeps asking for a key (and the app for a token)
        ("entra", func.AuthLevel.ANONYMOUS),
        (" ENTRA ", func.AuthLevel.ANONYMOUS),
        ("function-key", func.AuthLevel.FUNCTION),
        ("something-else", func.AuthLevel.FUNCTION),
    ],
)
def test_routes_are_anonymous_to_the_host_only_when_callers_sign_in_with_entra(value, level):
    assert route_auth_level({} if value is None else {"CALLER_AUTH": value}) == level


def test_the_function_app_registers_its_routes_anonymous_when_started_with_caller_auth_entra():
    """What the host indexes: a fresh interpreter imports function_app as the worker does."""
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): str(getattr(f.get_trigger().get_dict_repr().get('authLevel'), "
        "'value', f.get_trigger().get_dict_repr().get('authLevel'))) for f in function_app.app.get_functions() "
        "if f.get_trigger().get_dict_repr().get('type') == 'httpTrigger'}))"
    )
    for value, expected in (("entra", "anonymous"), ("function-key", "function")):
        env = {**os.environ, "CALLER_AUTH": value}
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, cwd=ROOT
        )
        levels = json.loads(out.stdout.strip().splitlines()[-1])
        assert set(levels) == {r.operation for r in ROUTES}
        assert set(levels.values()) == {expected}, value


# --- core.audit: the caller's identity, the tag, the logs -----------------------------------------


def test_acting_for_sets_the_caller_for_the_logs_and_restores_it(caplog):
    log = logging.getLogger("tests.audit")
    with acting_for("app:1 oid:2"):
        assert current_caller() == "app:1 oid:2"
        with acting_for("user:x oid:y"):
            log.info("inner")
        log.info("outer")
    log.info("after")
    seen = {r.getMessage(): getattr(r, "requested_by", None) for r in caplog.records if r.name == "tests.audit"}
    assert seen == {"inner": "user:x oid:y", "outer": "app:1 oid:2", "after": None}
    assert current_caller() == ""


def test_an_identity_is_short_and_printable_whatever_the_token_says():
    oid = str(uuid.uuid4())
    made = user_identity("é" * 400 + "\n\x00evil", oid)
    assert len(made) <= 256 and made.endswith(f" oid:{oid}") and made.isprintable()
    assert stamp({"a": "b"}) == ({"a": "b"}, True)  # no caller: as given


def test_the_requested_by_tag_fits_beside_the_record_and_never_breaks_a_write(svc, emulators, caplog):
    assert len(TAG_NAMES) + 1 <= 15  # the record's tags leave room for requested-by
    full = {f"t{i}": "x" for i in range(15)}
    with acting_for("app:ops oid:1"):
        tags, recorded = stamp(full)
        assert (tags, recorded) == (full, False)
        version = svc.vault.set(
            "caller-full-tags", "value-of-a-test-secret", tags=full, expires_on=None, content_type="t"
        )
        svc.vault.set("caller-room", "value-of-another-secret", tags={"a": "b"}, expires_on=None, content_type="t")
    assert REQUESTED_BY_TAG not in version.tags and len(version.tags) == 15
    assert emulators.world.keyvault.secrets["caller-room"].latest.tags == {"a": "b", REQUESTED_BY_TAG: "app:ops oid:1"}
    assert any("requested-by not recorded" in r.getMessage() for r in caplog.records)
    assert keep_requester({"state": "current"}, {REQUESTED_BY_TAG: "app:ops oid:1"}) == {
        "state": "current",
        REQUESTED_BY_TAG: "app:ops oid:1",
    }
