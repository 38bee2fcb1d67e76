"""Bad input to POST /api/tenants: a 4xx that names the field, and not one call to Graph, Key Vault,
Entra or Nylas. Driven through the real function handler, with the service wired to the emulators."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprints.http_api import provision_tenant
from core.errors import BadRequest
from provisioning.request import MAX_BODY_BYTES, parse_body, parse_request
from tests.support import calls_by_dependency, http_request, response_json, tenant_body

URL = "https://func.example/api/tenants"
CREDENTIAL = "nyk_v3_do_not_echo_this_credential_0001"


def post_raw(raw: bytes, content_type: str = "application/json"):
    return provision_tenant(http_request("POST", URL, raw=raw, content_type=content_type))


def changed(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid v3 body with one field (a dotted path) set to value, or removed when value is DROP."""
    body: dict[str, Any] = json.loads(json.dumps(base or tenant_body("acme", "v3-connector")))
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return body


DROP = object()
NATIVE = {"mode": "native", "redirectUri": "https://app.example.com/callback"}
MANUAL = tenant_body("acme", "manual")


def native(uri: Any) -> dict[str, Any]:
    return changed("auth", {"mode": "native", "redirectUri": uri})


# (id, body, field): every one answers 400 invalid_request naming field.
BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    # missing
    *[(f"missing-{f}", changed(f, DROP), f) for f in ("tenant", "displayName", "auth", "nylas")],
    *[(f"missing-{f}", changed(f, DROP), f) for f in ("nylas.region", "nylas.appId", "auth.mode")],
    ("missing-auth-region", changed("auth.region", DROP), "auth.region"),
    ("missing-native-redirect", changed("auth", {"mode": "native"}), "auth.redirectUri"),
    ("missing-v3-credential", changed("nylas.credential", DROP), "nylas.credential"),
    # unknown
    ("unknown-top-field", changed("tenantt", "acme"), "tenantt"),
    ("unknown-nylas-field", changed("nylas.apiKey", "x"), "nylas.apiKey"),
    ("unknown-auth-field", changed("auth.scopes", ["Mail.Read"]), "auth.scopes"),
    ("hosted-with-redirect", changed("auth.redirectUri", "https://app.example.com/cb"), "auth.redirectUri"),
    ("native-with-region", changed("auth", {**NATIVE, "region": "us"}), "auth.region"),
    ("unknown-deeply-nested", changed("nylas.credential", {"nested": {"deeper": 1}}), "nylas.credential"),
    # tenant slug
    *[
        (f"slug-{i}", changed("tenant", slug), "tenant")
        for i, slug in enumerate(["Acme", "a b", "a'b", "-acme", "acme-", "a--b", "", "a" * 41, "acme\n", "acmé"])
    ],
    # wrong JSON types and nulls
    ("tenant-number", changed("tenant", 5), "tenant"),
    ("tenant-null", changed("tenant", None), "tenant"),
    ("display-name-null", changed("displayName", None), "displayName"),
    ("display-name-list", changed("displayName", ["x"]), "displayName"),
    ("auth-string", changed("auth", "x"), "auth"),
    ("auth-null", changed("auth", None), "auth"),
    ("auth-list", changed("auth", [{"mode": "hosted", "region": "us"}]), "auth"),
    ("auth-mode-list", changed("auth.mode", ["hosted"]), "auth.mode"),
    ("auth-region-list", changed("auth.region", ["us"]), "auth.region"),
    ("auth-region-object", changed("auth.region", {"us": 1}), "auth.region"),
    ("nylas-list", changed("nylas", []), "nylas"),
    ("nylas-null", changed("nylas", None), "nylas"),
    ("nylas-target-object", changed("nylas.target", {}), "nylas.target"),
    ("nylas-target-null", changed("nylas.target", None), "nylas.target"),
    ("nylas-region-list", changed("nylas.region", ["us"]), "nylas.region"),
    ("nylas-app-id-number", changed("nylas.appId", 42), "nylas.appId"),
    ("credential-number", changed("nylas.credential", 12345678), "nylas.credential"),
    ("credential-null", changed("nylas.credential", None), "nylas.credential"),
    ("audience-list", changed("audience", ["multi-org"]), "audience"),
    ("audience-null", changed("audience", None), "audience"),
    ("lifetime-string", changed("secretLifetimeDays", "730"), "secretLifetimeDays"),
    ("lifetime-true", changed("secretLifetimeDays", True), "secretLifetimeDays"),
    ("lifetime-fraction", changed("secretLifetimeDays", 90.5), "secretLifetimeDays"),
    ("lifetime-null", changed("secretLifetimeDays", None), "secretLifetimeDays"),
    ("rotate-before-false", changed("rotateBeforeDays", False), "rotateBeforeDays"),
    ("existing-app-id-null", changed("existingAppId", None), "existingAppId"),
    ("existing-app-id-number", changed("existingAppId", 7), "existingAppId"),
    # display name
    ("display-name-121", changed("displayName", "x" * 121), "displayName"),
    ("display-name-blank", changed("displayName", "   "), "displayName"),
    ("display-name-empty", changed("displayName", ""), "displayName"),
    ("display-name-newline", changed("displayName", "Acme\nmail"), "displayName"),
    # redirect URI
    ("redirect-http", native("http://app.example.com/callback"), "auth.redirectUri"),
    ("redirect-wildcard", native("https://*.example.com/callback"), "auth.redirectUri"),
    ("redirect-wildcard-path", native("https://app.example.com/*"), "auth.redirectUri"),
    ("redirect-fragment", native("https://app.example.com/callback#done"), "auth.redirectUri"),
    ("redirect-empty-fragment", native("https://app.example.com/callback#"), "auth.redirectUri"),
    ("redirect-user-info", native("https://user@app.example.com/callback"), "auth.redirectUri"),
    ("redirect-no-host", native("https:///callback"), "auth.redirectUri"),
    ("redirect-relative", native("/callback"), "auth.redirectUri"),
    ("redirect-space", native("https://app.example.com/call back"), "auth.redirectUri"),
    ("redirect-bad-ipv6", native("https://[::1/callback"), "auth.redirectUri"),
    ("redirect-too-long", native("https://app.example.com/" + "a" * 233), "auth.redirectUri"),
    ("redirect-number", native(443), "auth.redirectUri"),
    # choices
    ("unknown-auth-mode", changed("auth.mode", "popup"), "auth.mode"),
    ("unknown-auth-region", changed("auth.region", "ap"), "auth.region"),
    ("unknown-nylas-region", changed("nylas.region", "apac"), "nylas.region"),
    ("region-uppercase", changed("nylas.region", "US"), "nylas.region"),
    ("unknown-target", changed("nylas.target", "v4-connector"), "nylas.target"),
    ("unknown-audience", changed("audience", "everyone"), "audience"),
    # lifetimes
    ("lifetime-0", changed("secretLifetimeDays", 0), "secretLifetimeDays"),
    ("lifetime-731", changed("secretLifetimeDays", 731), "secretLifetimeDays"),
    ("lifetime-negative", changed("secretLifetimeDays", -30), "secretLifetimeDays"),
    ("rotate-before-0", changed("rotateBeforeDays", 0), "rotateBeforeDays"),
    ("rotate-before-366", changed("rotateBeforeDays", 366), "rotateBeforeDays"),
    (
        "rotate-before-not-shorter",
        changed("rotateBeforeDays", 90, changed("secretLifetimeDays", 90)),
        "rotateBeforeDays",
    ),
    # credentials
    ("credential-for-manual", changed("nylas.credential", CREDENTIAL, MANUAL), "nylas.credential"),
    ("credential-secret-for-manual", changed("nylas.credentialSecret", "nylas-key", MANUAL), "nylas.credentialSecret"),
    ("credential-and-secret", changed("nylas.credentialSecret", "nylas-key"), "nylas.credential"),
    ("credential-empty", changed("nylas.credential", ""), "nylas.credential"),
    ("credential-with-space", changed("nylas.credential", "nyk v3 key"), "nylas.credential"),
    ("credential-too-long", changed("nylas.credential", "k" * 1025), "nylas.credential"),
    (
        "credential-secret-bad-name",
        changed("nylas.credentialSecret", "my_key", changed("nylas.credential", DROP)),
        "nylas.credentialSecret",
    ),
    ("app-id-empty", changed("nylas.appId", ""), "nylas.appId"),
    ("app-id-space", changed("nylas.appId", "my app"), "nylas.appId"),
    ("app-id-too-long", changed("nylas.appId", "a" * 129), "nylas.appId"),
    # the v3 app's shape
    ("scopes-unknown", changed("scopes", ["Mail.Read", "EAS.AccessAsUser.All"]), "scopes[1]"),
    ("scopes-repeated", changed("scopes", ["Mail.Read", "mail.read"]), "scopes[1]"),
    ("scopes-empty", changed("scopes", []), "scopes"),
    ("scopes-not-a-list", changed("scopes", "Mail.Read"), "scopes"),
    ("scopes-number", changed("scopes", [7]), "scopes[0]"),
    ("scopes-for-v2", changed("scopes", ["Mail.Read"], tenant_body("acme", "v2-integration")), "scopes"),
    ("personal-audience-for-v2", changed("audience", "any-org-and-personal", MANUAL), "audience"),
    ("personal-display-name-over-90", changed("displayName", "n" * 91), "displayName"),
    (
        "personal-redirect-with-query",
        changed("auth", {"mode": "custom", "redirectUri": "https://app.example.com/cb?x=1"}),
        "auth.redirectUri",
    ),
    ("replaces-itself", changed("replaces", "acme"), "replaces"),
    ("replaces-not-a-slug", changed("replaces", "Old Tenant"), "replaces"),
    ("replaces-from-v2", changed("replaces", "old", MANUAL), "replaces"),
    ("unknown-target", changed("nylas.target", "v3-grant"), "nylas.target"),
    # adoption
    ("existing-app-id-not-guid", changed("existingAppId", "my-app"), "existingAppId"),
    ("existing-app-id-braces", changed("existingAppId", "{6f1c7b5e-0e4a-4c53-9d0e-2b1f5a3c9e11}"), "existingAppId"),
]


@pytest.mark.parametrize(("body", "field"), [pytest.param(b, f, id=i) for i, b, f in BAD_BODIES])
def test_invalid_request_is_refused_with_the_field_and_no_outside_call(svc, emulators, body, field):
    emulators.world.reset_calls()

    response = provision_tenant(http_request("POST", URL, body))

    assert response.status_code == 400, response.get_body()
    error = response_json(response)["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert error["message"]
    assert calls_by_dependency(emulators) == {}
    assert CREDENTIAL not in response.get_body().decode()
    assert emulators.world.graph.apps.keys() == {emulators.world.identity.object_id}
    assert not emulators.world.keyvault.secrets


VALID = json.dumps(tenant_body("acme", "v3-connector")).encode()

# (id, raw body, content type, status, code, field)
BAD_ENVELOPES: list[tuple[str, bytes, str, int, str, str]] = [
    ("not-json", b"{tenant: acme}", "application/json", 400, "invalid_request", "body"),
    ("empty-body", b"", "application/json", 400, "invalid_request", "body"),
    ("truncated-json", VALID[:-1], "application/json", 400, "invalid_request", "body"),
    ("trailing-garbage", VALID + b"}", "application/json", 400, "invalid_request", "body"),
    ("invalid-utf8", VALID.replace(b'"acme"', b'"acm\xff"'), "application/json", 400, "invalid_request", "body"),
    ("utf16", VALID.decode().encode("utf-16"), "application/json", 400, "invalid_request", "body"),
    (
        "lone-surrogate",
        VALID.replace(b'"acme"', b'"acm\\ud800"', 1),
        "application/json",
        400,
        "invalid_request",
        "tenant",
    ),
    ("array", b"[]", "application/json", 400, "invalid_request", "body"),
    ("string", b'"acme"', "application/json", 400, "invalid_request", "body"),
    ("number", b"5", "application/json", 400, "invalid_request", "body"),
    ("null", b"null", "application/json", 400, "invalid_request", "body"),
    ("nan", VALID[:-1] + b', "secretLifetimeDays": NaN}', "application/json", 400, "invalid_request", "body"),
    (
        "huge-integer",
        VALID[:-1] + b', "secretLifetimeDays": ' + b"9" * 5000 + b"}",
        "application/json",
        400,
        "invalid_request",
        "body",
    ),
    ("deep-nesting", b"[" * 60000, "application/json", 400, "invalid_request", "body"),
    ("duplicate-key", b'{"tenant": "acme", ' + VALID[1:], "application/json", 400, "invalid_request", "tenant"),
    ("text-plain", VALID, "text/plain", 415, "unsupported_media_type", "Content-Type"),
    ("form", VALID, "application/x-www-form-urlencoded", 415, "unsupported_media_type", "Content-Type"),
    ("no-content-type", VALID, "", 415, "unsupported_media_type", "Content-Type"),
    ("latin1-charset", VALID, "application/json; charset=iso-8859-1", 415, "unsupported_media_type", "Content-Type"),
    ("json-suffix-type", VALID, "application/problem+json", 415, "unsupported_media_type", "Content-Type"),
    (
        "over-64-kib",
        VALID[:-1] + b', "pad": "' + b"x" * MAX_BODY_BYTES + b'"}',
        "application/json",
        413,
        "payload_too_large",
        "body",
    ),
    ("over-64-kib-not-json", b"x" * (MAX_BODY_BYTES + 1), "text/plain", 413, "payload_too_large", "body"),
]


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code", "field"), [pytest.param(*case[1:], id=case[0]) for case in BAD_ENVELOPES]
)
def test_unreadable_body_is_refused_with_its_status_and_no_outside_call(
    svc, emulators, raw, content_type, status, code, field
):
    emulators.world.reset_calls()

    response = post_raw(raw, content_type)

    assert response.status_code == status, response.get_body()
    error = response_json(response)["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert calls_by_dependency(emulators) == {}


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"']
)
def test_json_content_type_is_accepted_with_or_without_a_utf8_charset(content_type):
    assert parse_body(VALID, content_type)["tenant"] == "acme"


def test_body_of_exactly_64_kib_is_read():
    padding = MAX_BODY_BYTES - len(VALID)
    body = VALID[:-1] + b" " * padding + b"}"
    assert len(body) == MAX_BODY_BYTES
    assert parse_body(body, "application/json")["tenant"] == "acme"


def test_lifetime_given_as_a_whole_json_number_with_a_fraction_part_is_accepted():
    assert parse_request(changed("secretLifetimeDays", 90.0)).lifetime_days == 90


def test_short_lifetime_without_rotate_before_gets_a_window_of_half_the_lifetime():
    request = parse_request(changed("secretLifetimeDays", 20), default_rotate_before_days=30)
    assert (request.lifetime_days, request.rotate_before_days) == (20, 10)


def test_v3_target_is_the_default_and_gets_the_personal_audience_and_default_scopes():
    body = changed("nylas.target", DROP)
    request = parse_request(body)
    assert request.nylas.target.value == "v3-credential"
    assert request.sign_in_audience == "AzureADandPersonalMicrosoftAccount"
    assert request.redirect_uri == "https://api.us.nylas.com/v3/connect/callback"
    assert set(request.scopes) == {
        "Mail.ReadWrite",
        "Mail.Send",
        "Calendars.ReadWrite",
        "Contacts.ReadWrite",
        "User.Read",
        "offline_access",
        "openid",
        "profile",
    }


def test_v2_targets_keep_the_v2_page_shape():
    request = parse_request(changed("auth", {"mode": "hosted", "region": "eu"}, MANUAL))
    assert request.sign_in_audience == "AzureADMultipleOrgs"
    assert request.redirect_uri == "https://ireland.api.nylas.com/oauth/callback"
    assert request.scopes == ()


def test_scopes_accept_qualified_names_and_always_add_the_openid_and_offline_scopes():
    request = parse_request(changed("scopes", ["https://graph.microsoft.com/mail.read"]))
    assert request.scopes == ("Mail.Read", "offline_access", "openid", "profile")


def test_more_than_thirty_graph_permissions_are_refused(monkeypatch):
    import provisioning.graph_scopes as table

    many = {f"Scope{i}.Read": f"00000000-0000-0000-0000-{i:012d}" for i in range(40)}
    monkeypatch.setattr(table, "GRAPH_DELEGATED_SCOPES", {**table.GRAPH_DELEGATED_SCOPES, **many})
    with pytest.raises(BadRequest) as refused:
        parse_request(changed("scopes", list(many)[:28]))
    assert refused.value.field == "scopes" and "30" in refused.value.message
    assert len(parse_request(changed("scopes", list(many)[:27])).scopes) == 30


def test_display_name_is_trimmed_and_existing_app_id_lowercased():
    body = changed("existingAppId", "6F1C7B5E-0E4A-4C53-9D0E-2B1F5A3C9E11", changed("displayName", "  Acme  "))
    request = parse_request(body)
    assert (request.display_name, request.existing_app_id) == ("Acme", "6f1c7b5e-0e4a-4c53-9d0e-2b1f5a3c9e11")


def test_refusal_quotes_field_names_but_never_the_values_sent(svc, emulators):
    body = changed("nylas.credential", CREDENTIAL, MANUAL)
    body["nylas"][CREDENTIAL[:20]] = CREDENTIAL  # a credential under a misspelt name

    response = provision_tenant(http_request("POST", URL, body))

    assert response.status_code == 400
    assert CREDENTIAL not in response.get_body().decode()


# --- never a 500 -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
PATHS = [
    "tenant",
    "displayName",
    "audience",
    "auth",
    "auth.mode",
    "auth.region",
    "nylas",
    "nylas.target",
    "nylas.region",
    "nylas.appId",
    "nylas.credential",
    "nylas.credentialSecret",
    "scopes",
    "replaces",
    "secretLifetimeDays",
    "rotateBeforeDays",
    "existingAppId",
    "extra",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values | st.just(DROP)), min_size=1, max_size=4))
def test_parser_refuses_any_mutated_body_with_a_bad_request_and_nothing_else(mutations):
    body: Any = tenant_body("acme", "v3-connector")
    for path, value in mutations:
        try:
            body = changed(path, value, body)
        except (KeyError, TypeError):
            continue  # the parent was replaced by a non-object: that is mutation enough
    raw = json.dumps(body).encode()
    try:
        parse_request(parse_body(raw, "application/json"))
    except BadRequest as exc:
        assert exc.field and exc.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_never_answer_500_and_make_no_outside_call(svc, emulators, raw):
    emulators.world.reset_calls()

    response = post_raw(raw)

    assert 400 <= response.status_code < 500, response.get_body()
    assert set(response_json(response)["error"]) >= {"code", "message", "field"}
    assert calls_by_dependency(emulators) == {}
