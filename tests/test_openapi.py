"""docs/openapi.yaml is valid OpenAPI 3.1, its examples fit its schemas, and it says what the code does:
the routes of blueprints.http_api, the limits of provisioning.request, the answers the handlers give."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import provisioning.request as rq
from blueprints.http_api import (
    bp,
    confirm_rotation,
    get_tenant_http,
    list_tenants_http,
    provision_tenant,
    rotate_tenant,
)
from core.errors import BadRequest, ServiceError
from core.record import SLUG, NylasTarget, RotationState
from provisioning.manifest import ManifestError
from provisioning.provision import TenantView
from rotation.engine import Result
from tests.support import http_request, register_nylas, response_json, tenant_body

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
URL = "https://func.example/api/tenants"
GUID = "6f1c7b5e-0e4a-4c53-9d0e-2b1f5a3c9e11"


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def schema(name: str) -> dict[str, Any]:
    found: dict[str, Any] = document()["components"]["schemas"][name]
    return found


@cache
def validator(name: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.from_contents(document(), DRAFT202012))
    return Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_name(media: dict[str, Any]) -> str:
    ref: str = media["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def schema_accepts(name: str, instance: Any) -> bool:
    return bool(validator(name).is_valid(instance))


def parser_accepts(body: Any) -> bool:
    try:
        rq.parse_request(body)
    except BadRequest:
        return False
    return True


# --- the document itself ----------------------------------------------------------------------


def test_document_is_valid_openapi_3_1():
    assert document()["openapi"].startswith("3.1.")
    validate_openapi(document())


def test_every_schema_in_the_document_is_a_valid_2020_12_schema():
    for body in document()["components"]["schemas"].values():
        Draft202012Validator.check_schema(body)


def media_examples() -> list[tuple[str, str, Any]]:
    """(where, schema name, example value) for every example given beside a schema."""
    found = []
    for path, method, op in operations():
        bodies = [("request", op.get("requestBody", {}))]
        bodies += [(status, resolve(answer)) for status, answer in op["responses"].items()]
        for status, answer in bodies:
            for media in answer.get("content", {}).values():
                for key, example in media.get("examples", {}).items():
                    found.append((f"{method} {path} {status} {key}", schema_name(media), resolve(example)["value"]))
    for name, body in document()["components"]["schemas"].items():
        for i, example in enumerate(body.get("examples", [])):
            found.append((f"schema {name} #{i}", name, example))
    return found


def test_document_has_examples_for_requests_answers_and_errors():
    names = {name for _, name, _ in media_examples()}
    assert {"ProvisionRequest", "TenantView", "TenantList", "RotationQueued", "RotationConfirmed", "Error"} <= names


@pytest.mark.parametrize(("name", "value"), [pytest.param(n, v, id=w) for w, n, v in media_examples()])
def test_every_example_validates_against_its_schema(name, value):
    errors = [e.message for e in validator(name).iter_errors(value)]
    assert not errors


def test_every_request_example_is_accepted_by_the_parser():
    examples = [v for _, name, v in media_examples() if name == "ProvisionRequest"]
    assert len(examples) >= 3
    for example in examples:
        rq.parse_request(example)


def test_operations_are_the_function_routes_with_their_function_names():
    routes = set()
    for builder in bp._function_builders:
        function = builder.build()
        for binding in function.get_bindings():
            spec = binding.get_dict_repr()
            if spec.get("type") == "httpTrigger":
                assert str(spec["authLevel"]).upper().endswith("FUNCTION")
                for method in spec["methods"]:
                    method_name = getattr(method, "value", method)
                    routes.add((f"/api/{spec['route']}", str(method_name).lower(), function.get_function_name()))
    documented = {(path, method, op["operationId"]) for path, method, op in operations()}
    assert documented == routes


def test_security_is_the_function_key_in_the_code_query_or_x_functions_key_header():
    schemes = document()["components"]["securitySchemes"]
    places = {(s["type"], s["in"], s["name"]) for s in schemes.values()}
    assert places == {("apiKey", "query", "code"), ("apiKey", "header", "x-functions-key")}
    assert {next(iter(r)) for r in document()["security"]} == set(schemes)


# --- the request schema is the validator's -----------------------------------------------------


def test_request_schema_names_every_field_the_validator_knows():
    top = schema("ProvisionRequest")
    assert set(top["required"]) == rq.TOP_REQUIRED
    assert set(top["properties"]) == rq.TOP_REQUIRED | rq.TOP_OPTIONAL
    hosted, native = schema("HostedAuth"), schema("NativeAuth")
    assert set(hosted["properties"]) == set(hosted["required"]) == rq.HOSTED_AUTH_FIELDS
    assert set(native["properties"]) == set(native["required"]) == rq.NATIVE_AUTH_FIELDS
    assert {hosted["properties"]["mode"]["const"], native["properties"]["mode"]["const"]} == set(rq.AUTH_MODES)
    nylas = schema("NylasSpec")
    assert set(nylas["required"]) == rq.NYLAS_REQUIRED
    assert set(nylas["properties"]) == rq.NYLAS_REQUIRED | rq.NYLAS_OPTIONAL
    for obj in (top, hosted, native, nylas):
        assert obj["additionalProperties"] is False


def test_request_schema_has_the_validators_enums_patterns_and_limits():
    top = schema("ProvisionRequest")["properties"]
    nylas = schema("NylasSpec")["properties"]
    slug = schema("TenantSlug")
    assert (slug["pattern"], slug["maxLength"]) == (rq.TENANT_PATTERN, rq.MAX_TENANT)
    assert slug["pattern"] == SLUG.pattern
    assert (top["displayName"]["pattern"], top["displayName"]["maxLength"]) == (
        rq.DISPLAY_NAME_PATTERN,
        rq.MAX_DISPLAY_NAME,
    )
    assert top["audience"]["enum"] == list(rq.AUDIENCES)
    assert top["audience"]["default"] == rq.DEFAULT_AUDIENCE
    assert (top["secretLifetimeDays"]["minimum"], top["secretLifetimeDays"]["maximum"]) == rq.LIFETIME_RANGE
    assert (top["rotateBeforeDays"]["minimum"], top["rotateBeforeDays"]["maximum"]) == rq.ROTATE_BEFORE_RANGE
    assert top["existingAppId"]["pattern"] == rq.GUID_PATTERN
    assert schema("Region")["enum"] == list(rq.REGIONS) == list(rq.HOSTED_REDIRECTS)
    redirect = schema("NativeAuth")["properties"]["redirectUri"]
    assert (redirect["pattern"], redirect["maxLength"]) == (rq.REDIRECT_URI_PATTERN, rq.MAX_REDIRECT_URI)
    assert nylas["target"]["enum"] == list(rq.TARGETS) == [t.value for t in NylasTarget]
    assert (nylas["appId"]["pattern"], nylas["appId"]["maxLength"]) == (rq.APP_ID_PATTERN, rq.MAX_APP_ID)
    assert (nylas["credential"]["pattern"], nylas["credential"]["maxLength"]) == (
        rq.CREDENTIAL_PATTERN,
        rq.MAX_CREDENTIAL,
    )
    assert nylas["credential"]["writeOnly"] is True
    assert nylas["credentialSecret"]["pattern"] == rq.CREDENTIAL_SECRET_PATTERN


def test_answer_schemas_name_every_state_result_and_error_code_the_code_has():
    view = schema("TenantView")
    assert view["properties"]["rotationState"]["enum"] == [s.value for s in RotationState]
    assert schema("RotationConfirmed")["properties"]["result"]["enum"] == [r.value for r in Result]
    now = datetime.now(UTC)
    full = TenantView("acme", "o", "c", "k", "https://kv/secrets/x/1", now, "current", "manual", "us", "a")
    full = replace(full, updated_on=now, redirect_uri="https://r", admin_consent_url="https://a", warnings=("w",))
    assert set(full.to_json()) == set(view["properties"])
    assert set(view["required"]) == set(
        replace(full, updated_on=None, redirect_uri="", admin_consent_url="", warnings=()).to_json()
    )

    def codes(kind: type[ServiceError]) -> set[str]:
        return {kind.code}.union(*(codes(sub) for sub in kind.__subclasses__()))

    documented = set(schema("Error")["properties"]["error"]["properties"]["code"]["enum"])
    assert ManifestError.code in codes(ServiceError)
    assert codes(ServiceError) | {"misconfigured"} <= documented


# --- the schema and the parser accept and reject the same requests -----------------------------

ABSENT = object()


def body_with(**fields: Any) -> dict[str, Any]:
    body = tenant_body("acme", "v3-connector")
    for key, value in fields.items():
        if value is ABSENT:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def nylas_with(**fields: Any) -> dict[str, Any]:
    nylas = {"target": "v3-connector", "region": "us", "appId": "app-1", "credential": "nyk_key_1"}
    for key, value in fields.items():
        if value is ABSENT:
            nylas.pop(key, None)
        else:
            nylas[key] = value
    return body_with(nylas=nylas)


ACCEPTED = [
    ("minimal-v3", body_with()),
    ("v2-inline", nylas_with(target="v2-integration")),
    ("v2-secret-name", nylas_with(target="v2-integration", credential=ABSENT, credentialSecret="kv-v2-secret")),
    ("manual", nylas_with(target="manual", credential=ABSENT)),
    ("eu", nylas_with(region="eu")),
    ("single-org", body_with(audience="single-org")),
    ("native", body_with(auth={"mode": "native", "redirectUri": "https://a.example:8443/cb?x=1"})),
    ("native-bare-host", body_with(auth={"mode": "native", "redirectUri": "https://localhost"})),
    ("hosted-eu", body_with(auth={"mode": "hosted", "region": "eu"})),
    ("slug-40", body_with(tenant="a" * 40)),
    ("slug-dashes", body_with(tenant="a1-b2-c3")),
    ("name-120", body_with(displayName="x" * 120)),
    ("name-padded", body_with(displayName="  Acme  ")),
    ("name-unicode", body_with(displayName="Ünïcödé ✓ mail")),
    ("lifetime-bounds", body_with(secretLifetimeDays=730, rotateBeforeDays=365)),
    ("lifetime-2", body_with(secretLifetimeDays=2, rotateBeforeDays=1)),
    ("lifetime-1-default-window", body_with(secretLifetimeDays=1)),
    ("lifetime-whole-float", body_with(secretLifetimeDays=90.0)),
    ("guid", body_with(existingAppId=GUID)),
    ("guid-upper", body_with(existingAppId=GUID.upper())),
    ("app-id-128", nylas_with(appId="a" * 128)),
    ("credential-1024", nylas_with(credential="k" * 1024)),
    ("credential-secret-127", nylas_with(credential=ABSENT, credentialSecret="s" * 127)),
]

REJECTED = [
    ("not-object", []),
    ("missing-tenant", body_with(tenant=ABSENT)),
    ("missing-nylas", body_with(nylas=ABSENT)),
    ("unknown-field", body_with(extra=1)),
    ("nested-unknown", nylas_with(extra={"a": 1})),
    ("slug-upper", body_with(tenant="Acme")),
    ("slug-space", body_with(tenant="a b")),
    ("slug-quote", body_with(tenant="a'b")),
    ("slug-41", body_with(tenant="a" * 41)),
    ("slug-number", body_with(tenant=5)),
    ("name-121", body_with(displayName="x" * 121)),
    ("name-blank", body_with(displayName=" ")),
    ("name-control", body_with(displayName="a\tb")),
    ("name-null", body_with(displayName=None)),
    ("audience-unknown", body_with(audience="anyone")),
    ("auth-string", body_with(auth="x")),
    ("auth-no-mode", body_with(auth={"region": "us"})),
    ("hosted-with-redirect", body_with(auth={"mode": "hosted", "region": "us", "redirectUri": "https://a.b/c"})),
    ("native-http", body_with(auth={"mode": "native", "redirectUri": "http://a.example/cb"})),
    ("native-wildcard", body_with(auth={"mode": "native", "redirectUri": "https://*.example/cb"})),
    ("native-fragment", body_with(auth={"mode": "native", "redirectUri": "https://a.example/cb#x"})),
    ("native-userinfo", body_with(auth={"mode": "native", "redirectUri": "https://u:p@a.example/cb"})),
    ("native-257", body_with(auth={"mode": "native", "redirectUri": "https://a.example/" + "p" * 239})),
    ("region-unknown", nylas_with(region="ap")),
    ("target-unknown", nylas_with(target="v1")),
    ("target-null", nylas_with(target=None)),
    ("manual-with-credential", nylas_with(target="manual")),
    ("manual-with-secret-name", nylas_with(target="manual", credential=ABSENT, credentialSecret="kv")),
    ("v3-without-credential", nylas_with(credential=ABSENT)),
    ("both-credentials", nylas_with(credentialSecret="kv")),
    ("credential-empty", nylas_with(credential="")),
    ("credential-space", nylas_with(credential="a b")),
    ("credential-1025", nylas_with(credential="k" * 1025)),
    ("credential-secret-underscore", nylas_with(credential=ABSENT, credentialSecret="kv_name")),
    ("credential-secret-128", nylas_with(credential=ABSENT, credentialSecret="s" * 128)),
    ("app-id-129", nylas_with(appId="a" * 129)),
    ("app-id-space", nylas_with(appId="a b")),
    ("lifetime-0", body_with(secretLifetimeDays=0)),
    ("lifetime-731", body_with(secretLifetimeDays=731)),
    ("lifetime-string", body_with(secretLifetimeDays="730")),
    ("lifetime-bool", body_with(secretLifetimeDays=True)),
    ("lifetime-fraction", body_with(secretLifetimeDays=1.5)),
    ("rotate-before-366", body_with(rotateBeforeDays=366)),
    ("guid-short", body_with(existingAppId=GUID[:-1])),
    ("guid-null", body_with(existingAppId=None)),
]


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in ACCEPTED])
def test_request_the_schema_accepts_is_accepted_by_the_parser(body):
    assert schema_accepts("ProvisionRequest", body)
    assert parser_accepts(body)


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in REJECTED])
def test_request_the_schema_rejects_is_rejected_by_the_parser(body):
    assert not schema_accepts("ProvisionRequest", body)
    assert not parser_accepts(body)


def test_rotate_before_not_shorter_than_lifetime_is_the_one_rule_only_the_parser_checks():
    body = body_with(secretLifetimeDays=30, rotateBeforeDays=30)
    assert schema_accepts("ProvisionRequest", body)
    assert not parser_accepts(body)
    assert "shorter than `secretLifetimeDays`" in schema("ProvisionRequest")["properties"]["rotateBeforeDays"][
        "description"
    ].replace("\n", " ")


# Per field: values the schema allows, and values it does not (ABSENT: the field is left out).
FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "tenant": (["acme", "a" * 40, "a1-b2"], ["Acme", "a b", "a'b", "a--b", "-a", "", "a" * 41, None, 5, ABSENT]),
    "displayName": (["Acme", " Acme ", "x" * 120, "Ünï ✓"], ["", "  ", "x" * 121, "a\nb", None, [], ABSENT]),
    "audience": (["multi-org", "single-org", ABSENT], ["anyone", None, ["multi-org"]]),
    "secretLifetimeDays": ([1, 2, 30, 90, 730, 90.0, ABSENT], [731, 0, -5, 90.5, "90", True, None]),
    "rotateBeforeDays": ([1, 29, 30, 365, 30.0, ABSENT], [366, 0, "30", False, None]),
    "existingAppId": ([GUID, GUID.upper(), ABSENT], [GUID[:-1], "x", None, 7]),
    "extra": ([ABSENT], [{"nested": 1}]),
}
AUTH_FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "mode": (["hosted", "native"], ["popup", None, ABSENT]),
    "region": (["us", "eu"], ["ap", {}, None]),
    "redirectUri": (
        ["https://app.example.com/cb", "https://a.b:443/x?y=1", "https://localhost", "https://a.b/" + "p" * 243],
        ["https://a.b/" + "p" * 244, "http://a.b/cb", "https://*.b/cb", "https://a.b/cb#f", "https://u@a.b/cb", 8],
    ),
}
NYLAS_FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "target": (["v3-connector", "v2-integration", "manual"], ["v4", None, 3, ABSENT]),
    "region": (["us", "eu"], ["apac", ["us"], ABSENT]),
    "appId": (["app-1", "a" * 128, "A.b_c-1"], ["a" * 129, "", "a b", "-x", 7, ABSENT]),
    "credential": (["nyk_1", "k" * 1024, ABSENT], ["k" * 1025, "", "a b", None, 5]),
    "credentialSecret": (["kv-name", "s" * 127, ABSENT], ["s" * 128, "", "kv_name", None]),
    "extra": ([ABSENT], [1]),
}


@st.composite
def objects(draw: st.DrawFn, fields: dict[str, tuple[list[Any], list[Any]]], bad_odds: int) -> dict[str, Any]:
    """An object whose every field is usually allowed and sometimes (1 in bad_odds) not."""
    out = {}
    for key, (good, bad) in fields.items():
        pool = bad if draw(st.integers(1, bad_odds)) == 1 else good
        value = draw(st.sampled_from(pool))
        if value is not ABSENT:
            out[key] = value
    return out


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(objects(FIELDS, 40))
    auth = draw(objects(AUTH_FIELDS, 40))
    # Mostly a coherent auth object: hosted has a region, native a redirect URI.
    if draw(st.integers(1, 6)) > 1:
        auth.pop("redirectUri" if auth.get("mode") == "hosted" else "region", None)
    body["auth"] = auth
    nylas = draw(objects(NYLAS_FIELDS, 40))
    if draw(st.integers(1, 6)) > 1:  # mostly the credential the target needs, and only that one
        if nylas.get("target") == "manual":
            nylas.pop("credential", None)
            nylas.pop("credentialSecret", None)
        elif "credential" in nylas and "credentialSecret" in nylas:
            nylas.pop(draw(st.sampled_from(["credential", "credentialSecret"])))
    body["nylas"] = nylas
    for key in ("auth", "nylas"):
        if draw(st.integers(1, 30)) == 1:
            body[key] = draw(st.sampled_from([None, "x", [], ABSENT]))
            if body[key] is ABSENT:
                del body[key]
    return body


@settings(max_examples=1500, deadline=None)
@given(requests())
def test_schema_and_parser_agree_on_generated_requests(body):
    expected = schema_accepts("ProvisionRequest", body)
    if expected and "rotateBeforeDays" in body:
        expected = body["rotateBeforeDays"] < body.get("secretLifetimeDays", 730)
    accepted = parser_accepts(body)
    event("accepted" if accepted else "rejected")
    assert accepted == expected, json.dumps(body)


# --- the handlers answer what the document says ------------------------------------------------


def assert_documented(operation_id: str, response, *, body_schema: str | None = None) -> Any:
    op = next(op for _, _, op in operations() if op["operationId"] == operation_id)
    answer = op["responses"].get(str(response.status_code))
    assert answer is not None, f"{operation_id} answered undocumented {response.status_code}"
    answer = resolve(answer)
    out = response_json(response)
    media = answer["content"]["application/json"]
    name = schema_name(media)
    assert body_schema in (None, name)
    errors = [e.message for e in validator(name).iter_errors(out)]
    assert not errors, errors
    for header in answer.get("headers", {}):
        assert response.headers.get(header), header
    return out


def post(body):
    return provision_tenant(http_request("POST", URL, body))


def one(tenant, handler, path=""):
    method = "GET" if handler is get_tenant_http else "POST"
    return handler(http_request(method, f"{URL}/{tenant}{path}", route_params={"tenant": tenant}))


def test_handlers_answer_with_the_documented_status_and_schema(svc, emulators):
    v3 = tenant_body("acme", "v3-connector")
    manual = tenant_body("initech", "manual")
    for body in (v3, manual):
        register_nylas(emulators, body)

    assert_documented("provision_tenant", post(v3), body_schema="TenantView")
    again = post(v3)
    assert again.status_code == 200
    assert_documented("provision_tenant", again, body_schema="TenantView")
    assert response_json(post(manual))["rotationState"] == "awaiting-confirmation"
    listed = assert_documented("list_tenants", list_tenants_http(http_request("GET", URL)), body_schema="TenantList")
    assert listed["count"] == 2
    assert_documented("get_tenant", one("acme", get_tenant_http), body_schema="TenantView")
    assert_documented("rotate_tenant", one("acme", rotate_tenant, "/rotate"), body_schema="RotationQueued")
    confirmed = assert_documented(
        "confirm_rotation", one("initech", confirm_rotation, "/rotation/confirm"), body_schema="RotationConfirmed"
    )
    assert confirmed["result"] == "rotated"

    errors = [
        ("provision_tenant", post(body_with(tenant="Acme")), 400),
        ("provision_tenant", provision_tenant(http_request("POST", URL, v3, content_type="text/plain")), 415),
        ("provision_tenant", post({**v3, "existingAppId": GUID}), 409),
        ("get_tenant", one("nobody", get_tenant_http), 404),
        ("get_tenant", one("No Body", get_tenant_http), 400),
        ("rotate_tenant", one("nobody", rotate_tenant, "/rotate"), 404),
        ("confirm_rotation", one("acme", confirm_rotation, "/rotation/confirm"), 409),
    ]
    for operation_id, response, status in errors:
        assert response.status_code == status, (operation_id, response.get_body())
        assert_documented(operation_id, response, body_schema="Error")
