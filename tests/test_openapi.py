"""docs/openapi.yaml is valid OpenAPI 3.1, its examples fit its schemas, and it says what the code does:
the routes of blueprints.http_api, the limits of provisioning.request, the answers the handlers give.

The request schemas state every rule of ``parse_request`` and ``parse_branding_update`` that JSON
Schema can state, the rules that depend on the Nylas target's generation and on the audience included
(``if``/``then``). The few it cannot state (two fields compared, names equal in another spelling, what a
base64 logo decodes to) are said in the fields' descriptions and listed in ``PARSER_ONLY``: each is
checked to be described, and to be the only difference between the document and the parser.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import yaml
from hypothesis import event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import provisioning.request as rq
from blueprints.caller_auth import ROLES, ROUTE_AUTH_LEVEL, required_role
from blueprints.http_api import (
    bp,
    confirm_rotation,
    get_tenant_http,
    list_tenants_http,
    provision_tenant,
    retire_tenant,
    rotate_tenant,
    update_tenant,
)
from core.errors import BadRequest, ServiceError
from core.ports import AppProfile, InfoUrls, VerifiedPublisher
from core.record import SLUG, Audience, NylasTarget, RotationState, TenantRecord, secret_name
from provisioning.branding import BrandingResult
from provisioning.graph_scopes import (
    ALWAYS,
    DEFAULT_SCOPES,
    GRAPH_DELEGATED_SCOPES,
    GRAPH_SCOPE_PREFIX,
    MAX_PERMISSIONS_PER_API,
)
from provisioning.manifest import ManifestError
from provisioning.provision import TenantView
from provisioning.readiness import Readiness, UserConsent
from provisioning.retire import RetireResult
from rotation.engine import Result
from tests.fuzz_support import EcmaValidator, writes
from tests.support import drain_queue, http_request, register_nylas, response_json, tenant_body

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
    """The named schema, its ``pattern``s read as ECMA-262 reads them (a final ``$`` matches only at the
    very end: "AAAA\\n" is not base64 to the document, as it is not to the parser's ``fullmatch``)."""
    registry: Registry[Any] = Registry().with_resource("urn:openapi", Resource.from_contents(document(), DRAFT202012))
    found: Draft202012Validator = EcmaValidator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)
    return found


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


def operation(operation_id: str) -> dict[str, Any]:
    return next(op for _, _, op in operations() if op["operationId"] == operation_id)


def schema_accepts(name: str, instance: Any) -> bool:
    return bool(validator(name).is_valid(instance))


def parser_accepts(body: Any) -> bool:
    try:
        rq.parse_request(body)
    except BadRequest:
        return False
    return True


def update_parser_accepts(body: Any) -> bool:
    """Whether ``parse_branding_update`` (the body of PATCH /api/tenants/{tenant}) takes ``body``."""
    try:
        rq.parse_branding_update(body)
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
    assert {
        "ProvisionRequest",
        "TenantAccepted",
        "TenantView",
        "TenantList",
        "BrandingUpdate",
        "BrandingResult",
        "RetireResult",
        "RotationQueued",
        "RotationConfirmed",
        "Error",
    } <= names


@pytest.mark.parametrize(("name", "value"), [pytest.param(n, v, id=w) for w, n, v in media_examples()])
def test_every_example_validates_against_its_schema(name, value):
    errors = [e.message for e in validator(name).iter_errors(value)]
    assert not errors


def test_every_request_example_is_accepted_by_the_parser():
    examples = [v for _, name, v in media_examples() if name == "ProvisionRequest"]
    assert len(examples) >= 3
    assert any("branding" in example for example in examples)
    for example in examples:
        rq.parse_request(example)
    updates = [v for _, name, v in media_examples() if name == "BrandingUpdate"]
    assert len(updates) >= 2
    for update in updates:
        rq.parse_branding_update(update)


def test_operations_are_the_function_routes_with_their_function_names():
    routes = set()
    for builder in bp._function_builders:
        function = builder.build()
        for binding in function.get_bindings():
            spec = binding.get_dict_repr()
            if spec.get("type") == "httpTrigger":
                # FUNCTION unless CALLER_AUTH=entra is set when the app starts (blueprints/caller_auth.py).
                assert str(spec["authLevel"]).upper().endswith(ROUTE_AUTH_LEVEL.name)
                for method in spec["methods"]:
                    method_name = getattr(method, "value", method)
                    routes.add((f"/api/{spec['route']}", str(method_name).lower(), function.get_function_name()))
    documented = {(path, method, op["operationId"]) for path, method, op in operations()}
    assert documented == routes


def test_security_is_an_entra_bearer_token_or_the_function_key_in_the_code_query_or_header():
    schemes = document()["components"]["securitySchemes"]
    keys = {name: s for name, s in schemes.items() if s["type"] == "apiKey"}
    assert {(s["in"], s["name"]) for s in keys.values()} == {("query", "code"), ("header", "x-functions-key")}
    bearer = {name: s for name, s in schemes.items() if s["type"] == "http"}
    assert [(s["scheme"], s["bearerFormat"]) for s in bearer.values()] == [("bearer", "JWT")]
    assert set(schemes) == set(keys) | set(bearer)
    assert {next(iter(r)) for r in document()["security"]} == set(schemes)


HANDLER_OF = {
    "provision_tenant": provision_tenant,
    "list_tenants": list_tenants_http,
    "get_tenant": get_tenant_http,
    "retire_tenant": retire_tenant,
    "rotate_tenant": rotate_tenant,
    "confirm_rotation": confirm_rotation,
    "update_tenant": update_tenant,
}


def test_every_function_route_requires_an_app_role():
    """A new route (PATCH /api/tenants/{tenant}, say) cannot be added without ``@requires(role)``."""
    for builder in bp._function_builders:
        function = builder.build()
        role = required_role(function.get_user_function())
        assert role in ROLES, f"{function.get_function_name()} has no @requires(<app role>)"


def test_each_operation_names_the_app_role_its_handler_requires_and_documents_401_and_403():
    bearer = next(name for name, s in document()["components"]["securitySchemes"].items() if s["type"] == "http")
    for _, _, op in operations():
        handler = HANDLER_OF[op["operationId"]]
        needed = [r[bearer] for r in op["security"] if bearer in r]
        assert needed == [[required_role(handler)]], op["operationId"]
        assert {next(iter(r)) for r in op["security"]} == {next(iter(r)) for r in document()["security"]}
        assert {"401", "403"} <= set(op["responses"]), op["operationId"]
        for status in ("401", "403"):
            media = resolve(op["responses"][status])["content"]["application/json"]
            assert schema_name(media) == "Error"
    error = schema("Error")["properties"]["error"]["properties"]
    assert error["requiredRole"]["enum"] == list(ROLES)
    assert {"unauthorized", "forbidden"} <= set(error["code"]["enum"])
    described = " ".join(document()["info"]["description"].split())
    assert all(f"`{role}`" in described for role in ROLES)


# --- the request schema is the validator's -----------------------------------------------------


def test_request_schema_names_every_field_the_validator_knows():
    top = schema("ProvisionRequest")
    assert set(top["required"]) == rq.TOP_REQUIRED
    assert set(top["properties"]) == rq.TOP_REQUIRED | rq.TOP_OPTIONAL
    hosted, custom = schema("HostedAuth"), schema("CustomAuth")
    assert set(hosted["properties"]) == set(hosted["required"]) == rq.HOSTED_AUTH_FIELDS
    assert set(custom["properties"]) == set(custom["required"]) == rq.NATIVE_AUTH_FIELDS
    modes = [hosted["properties"]["mode"]["const"], *custom["properties"]["mode"]["enum"]]
    assert sorted(modes) == sorted(rq.AUTH_MODES)
    mapping = top["properties"]["auth"]["discriminator"]["mapping"]
    assert set(mapping) == set(rq.AUTH_MODES)
    assert {mode: ref.rsplit("/", 1)[1] for mode, ref in mapping.items()} == {
        mode: "HostedAuth" if mode == "hosted" else "CustomAuth" for mode in rq.AUTH_MODES
    }
    nylas = schema("NylasSpec")
    assert set(nylas["required"]) == rq.NYLAS_REQUIRED
    assert set(nylas["properties"]) == rq.NYLAS_REQUIRED | rq.NYLAS_OPTIONAL
    branding, logo, update = schema("Branding"), schema("Logo"), schema("BrandingUpdate")
    assert top["properties"]["branding"]["$ref"] == "#/components/schemas/Branding"
    assert set(branding["properties"]) == rq.BRANDING_FIELDS and "required" not in branding
    assert branding["minProperties"] == 1  # parse_branding: "must name at least one of"
    assert set(logo["properties"]) == set(logo["required"]) == rq.LOGO_FIELDS
    # PATCH /api/tenants/{tenant}: {"branding": {...}} and nothing else (parse_branding_update).
    assert set(update["properties"]) == set(update["required"]) == {"branding"}
    assert update["properties"]["branding"] == {"$ref": "#/components/schemas/Branding"}
    patch_body = operation("update_tenant")["requestBody"]
    assert patch_body["required"] is True
    assert schema_name(patch_body["content"]["application/json"]) == "BrandingUpdate"
    for obj in (top, hosted, custom, nylas, branding, logo, update):
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
    # The default of the default target's generation; the other generation's, in words.
    assert (
        top["audience"]["default"]
        == rq.DEFAULT_AUDIENCE
        == rq.DEFAULT_AUDIENCES[NylasTarget(rq.DEFAULT_TARGET).generation]
    )
    for generation, audience in rq.DEFAULT_AUDIENCES.items():
        assert f"`{audience}` for a v{generation} target" in " ".join(top["audience"]["description"].split())
    assert (top["secretLifetimeDays"]["minimum"], top["secretLifetimeDays"]["maximum"]) == rq.LIFETIME_RANGE
    assert (top["rotateBeforeDays"]["minimum"], top["rotateBeforeDays"]["maximum"]) == rq.ROTATE_BEFORE_RANGE
    assert top["existingAppId"]["pattern"] == rq.GUID_PATTERN
    assert schema("Region")["enum"] == list(rq.REGIONS)
    hosted = " ".join(schema("HostedAuth")["description"].split())
    for generation, redirects in rq.HOSTED_REDIRECTS.items():
        assert list(redirects) == list(rq.REGIONS)
        for region, uri in redirects.items():
            assert f"`{uri}` ({region})" in hosted.split(f"v{generation} ", 1)[1], (generation, region)
    redirect = schema("CustomAuth")["properties"]["redirectUri"]
    assert (redirect["pattern"], redirect["maxLength"]) == (rq.REDIRECT_URI_PATTERN, rq.MAX_REDIRECT_URI)
    assert nylas["target"]["enum"] == list(rq.TARGETS) == [t.value for t in NylasTarget]
    assert nylas["target"]["default"] == rq.DEFAULT_TARGET
    assert (nylas["appId"]["pattern"], nylas["appId"]["maxLength"]) == (rq.APP_ID_PATTERN, rq.MAX_APP_ID)
    assert (nylas["credential"]["pattern"], nylas["credential"]["maxLength"]) == (
        rq.CREDENTIAL_PATTERN,
        rq.MAX_CREDENTIAL,
    )
    assert nylas["credential"]["writeOnly"] is True
    assert nylas["credentialSecret"]["pattern"] == rq.CREDENTIAL_SECRET_PATTERN
    assert top["replaces"]["$ref"] == "#/components/schemas/TenantSlug"
    info_url = schema("InfoUrl")
    assert (info_url["pattern"], info_url["maxLength"]) == (rq.INFO_URL_PATTERN, rq.MAX_INFO_URL)
    for name in rq.BRANDING_URL_FIELDS:
        assert schema("Branding")["properties"][name]["$ref"] == "#/components/schemas/InfoUrl"
    assert schema("Branding")["properties"]["logo"]["$ref"] == "#/components/schemas/Logo"
    logo = schema("Logo")["properties"]
    assert logo["contentType"]["enum"] == list(rq.LOGO_TYPES)
    # The longest base64 text the parser reads before decoding it: MAX_LOGO_BYTES, padded to whole groups.
    assert logo["base64"]["maxLength"] == 4 * ((rq.MAX_LOGO_BYTES + 2) // 3) == 136536
    described = " ".join(logo["base64"]["description"].split())
    assert f"at most {rq.MAX_LOGO_BYTES // 1024} KB ({rq.MAX_LOGO_BYTES} bytes)" in described
    for magic in (m for prefixes in rq.LOGO_TYPES.values() for m in prefixes):
        assert f"`{magic.hex(' ').upper()}`" in described, magic
    # The 413 answers state the body limits the handlers pass to parse_body.
    limits = {"provision_tenant": rq.MAX_BODY_BYTES, "update_tenant": rq.MAX_BRANDING_BODY_BYTES}
    for operation_id, limit in limits.items():
        too_large = operation(operation_id)["responses"]["413"]
        assert f"larger than {limit} bytes" in too_large["description"], operation_id
        example = too_large["content"]["application/json"]["examples"]["tooLarge"]["value"]
        assert example["error"]["message"] == f"request body is larger than {limit} bytes"


PNG_PREFIX = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00").decode()  # 12 characters: the PNG signature and a byte


# Pieces of base64 text, whole groups and broken ones, padding and characters base64 does not have.
BASE64_PIECES = [*["AAAA", "Qz+/", "iVBO"] * 6, "AQ==", "AAQ=", "=", "==", "A", "AQ", "Az+", "\n", " ", "-", "_", "Å"]


@settings(max_examples=1500, deadline=None)
@given(tail=st.lists(st.sampled_from(BASE64_PIECES), max_size=5).map("".join), prefixed=st.integers(0, 3).map(bool))
def test_the_base64_pattern_is_what_the_parser_decodes(tail, prefixed):
    body = {"branding": {"logo": {"contentType": "image/png", "base64": (PNG_PREFIX if prefixed else "") + tail}}}
    expected = schema_accepts("BrandingUpdate", body) and not logo_refused_once_decoded(body)
    accepted = update_parser_accepts(body)
    event("accepted" if accepted else "rejected")
    assert accepted == expected, json.dumps(body)


def test_the_base64_pattern_takes_what_python_decodes_and_no_more():
    def logo(text: str) -> dict[str, Any]:
        return {"contentType": "image/png", "base64": text}

    # Python's base64 (validate=True) also takes surplus "=" after a complete group: so does the pattern.
    for text in ["AAAA", "AQ==", "AAQ=", "AAAA=", "AAAA===", "AAAAAQ==", PNG_PREFIX + "=="]:
        assert schema_accepts("Logo", logo(text)), text
        base64.b64decode(text, validate=True)
    for text in ["A", "AQ", "AQ=", "AQ===", "AAQ==", "=", "AQ==AAAA", "AA AA", "AAAA\n", "AA-_", "AAA."]:
        assert not schema_accepts("Logo", logo(text)), text
        with pytest.raises(binascii.Error):
            base64.b64decode(text, validate=True)
    assert not schema_accepts("Logo", logo(""))  # decodes to nothing: "is empty"
    assert not update_parser_accepts({"branding": {"logo": logo("")}})


def case_blind(text: str) -> str:
    """A regular expression for text in any ASCII letter case (ECMA-262 and Python alike: no flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else "\\." if c == "." else c for c in text)


def test_scopes_are_the_graph_scope_table():
    scopes = schema("ProvisionRequest")["properties"]["scopes"]
    scope = schema("GraphScope")
    assert scopes["items"] == {"$ref": "#/components/schemas/GraphScope"}
    assert scope["examples"] == list(GRAPH_DELEGATED_SCOPES)
    names = "|".join(case_blind(name) for name in GRAPH_DELEGATED_SCOPES)
    assert scope["pattern"] == f"^(?:{case_blind(GRAPH_SCOPE_PREFIX)})?(?:{names})$"
    assert scope["maxLength"] == rq.MAX_SCOPE_NAME
    assert (scopes["minItems"], scopes["maxItems"], scopes["uniqueItems"]) == (1, MAX_PERMISSIONS_PER_API, True)
    assert scopes["default"] == list(DEFAULT_SCOPES)
    described = " ".join(scopes["description"].split())
    assert all(f"`{name}`" in described for name in ALWAYS)
    assert f"at most {MAX_PERMISSIONS_PER_API}" in described
    for name in GRAPH_DELEGATED_SCOPES:
        for spelling in (name, name.lower(), name.upper(), GRAPH_SCOPE_PREFIX.upper() + name.swapcase()):
            assert schema_accepts("GraphScope", spelling), spelling
            assert parser_accepts(body_with(scopes=[spelling])), spelling
    for other in ("EAS.AccessAsUser.All", "Mail", "Mail.Read ", "graph.microsoft.com/Mail.Read", GRAPH_SCOPE_PREFIX):
        assert not schema_accepts("GraphScope", other), other
        assert not parser_accepts(body_with(scopes=[other])), other


def rules() -> list[dict[str, Any]]:
    return list(schema("ProvisionRequest")["allOf"])


def test_the_v2_targets_rule_is_the_parsers():
    (v2,) = [r for r in rules() if "v2 target" in r["description"]]
    v2_targets = [t.value for t in NylasTarget if t.generation == 2]
    assert v2["if"]["properties"]["nylas"]["properties"]["target"]["enum"] == v2_targets
    then = v2["then"]["properties"]
    assert then["audience"]["enum"] == [a.value for a in Audience if not a.allows_personal]
    assert (then["scopes"], then["replaces"]) == (False, False)


def test_the_personal_audience_rule_is_the_parsers():
    (personal,) = [r for r in rules() if "any-org-and-personal" in r["description"]]
    (given, default) = personal["if"]["anyOf"]
    (allows_personal,) = [a.value for a in Audience if a.allows_personal]
    assert given["properties"]["audience"]["const"] == allows_personal
    v2_targets = [t.value for t in NylasTarget if t.generation == 2]
    assert default["properties"]["nylas"]["not"]["properties"]["target"]["enum"] == v2_targets
    assert rq.DEFAULT_AUDIENCES[3] == allows_personal != rq.DEFAULT_AUDIENCES[2]
    name = personal["then"]["properties"]["displayName"]["pattern"]
    assert f"{{0,{rq.MAX_DISPLAY_NAME_PERSONAL - 2}}}" in name
    assert f"at most {rq.MAX_DISPLAY_NAME_PERSONAL}" in " ".join(personal["description"].split())
    assert f"{rq.MAX_DISPLAY_NAME_PERSONAL} characters" in " ".join(schema("ProvisionRequest")["description"].split())


# Every character str.strip() drops and the display name pattern allows anywhere.
BLANKS = [c for c in map(chr, range(0x110000)) if c.isspace() and c.strip() == "" and ord(c) > 0x1F]


@pytest.mark.parametrize("blank", BLANKS, ids=[f"U+{ord(c):04X}" for c in BLANKS])
def test_the_personal_display_name_limit_counts_what_remains_once_blanks_are_dropped(blank):
    n = rq.MAX_DISPLAY_NAME_PERSONAL
    names = [
        "x" * n,
        "x" * (n + 1),
        blank + "x" * n,
        blank * 3 + "x" * n + blank * 2,
        blank + "x" * (n + 1),
        "x" + blank * (n - 2) + "x",
        "x" + blank * (n - 1) + "x",
        blank * 2 + "x" + blank * (n - 2) + "x" + blank,
        blank,
        blank * 5,
        blank + "x",
        "x",
    ]
    for name in names:
        for audience in ("any-org-and-personal", "multi-org"):
            body = body_with(displayName=name, audience=audience)
            assert schema_accepts("ProvisionRequest", body) == parser_accepts(body), (audience, repr(name))


def test_answer_schemas_name_every_state_result_and_error_code_the_code_has():
    view = schema("TenantView")
    assert view["properties"]["rotationState"]["enum"] == [s.value for s in RotationState]
    assert schema("RotationConfirmed")["properties"]["result"]["enum"] == [r.value for r in Result]
    now = datetime.now(UTC)
    assert view["properties"]["audience"]["enum"] == list(rq.AUDIENCES)
    assert view["properties"]["nylas"]["properties"]["target"]["enum"] == list(rq.TARGETS)
    minimal = TenantView("acme", "o", "c", "k", "https://kv/secrets/x/1", now, "current", "v3-credential", "us", "a")
    judged = Readiness(
        ready=False,
        missing=("no terms of service URL",),
        advice=("no logo (the consent prompt shows a generic icon)",),
        publisher_domain="acme.example",
        verified_publisher=VerifiedPublisher("1234567", "Acme Ltd", now),
        info=InfoUrls(privacy_statement_url="https://acme.example/privacy"),
        admin_consent_for=("Place.Read.All",),
        user_consent=UserConsent.ADMIN_ONLY.value,
        admin_consent_url="https://login.microsoftonline.com/common/adminconsent?client_id=c",
    )
    full = replace(
        minimal,
        updated_on=now,
        redirect_uri="https://r",
        admin_consent_url="https://a",
        warnings=("w",),
        audience="multi-org",
        nylas_credential_id="cred-1",
        hosted_auth_url="https://h",
        replaces="old",
        replaced_by="new",
        readiness=judged,
    )
    # `status` is the one property the handler adds: POST /api/tenants's 202 (TenantAccepted requires it).
    assert set(full.to_json()) | {"status"} == set(view["properties"])
    assert "status" not in full.to_json()
    assert set(view["required"]) == set(minimal.to_json())
    accepted = schema("TenantAccepted")
    assert accepted["allOf"] == [{"$ref": "#/components/schemas/TenantView"}] and accepted["required"] == ["status"]
    assert validator("TenantAccepted").is_valid(full.to_json() | {"status": "/api/tenants/acme"})
    assert not validator("TenantAccepted").is_valid(full.to_json())

    # readiness: judged from the app, or not known (the app could not be read).
    assert view["properties"]["readiness"]["$ref"] == "#/components/schemas/Readiness"
    judged_schema, unknown_schema = schema("ReadinessJudged"), schema("ReadinessUnknown")
    assert set(judged.to_json()) == set(judged_schema["properties"]) == set(judged_schema["required"])
    consent = judged_schema["properties"]["consent"]
    assert consent["properties"]["userConsent"]["enum"] == [c.value for c in UserConsent]
    judged_json: dict[str, Any] = judged.to_json()
    assert set(judged_json["consent"]) == set(consent["properties"]) == set(consent["required"])
    links = judged_schema["properties"]["branding"]
    assert set(judged_json["branding"]) == set(links["properties"]) == set(links["required"])
    publisher = judged_schema["properties"]["verifiedPublisher"]
    assert set(judged_json["verifiedPublisher"]) == set(publisher["properties"]) == set(publisher["required"])
    bare = replace(judged, verified_publisher=VerifiedPublisher(), missing=(), ready=True, info=InfoUrls())
    for ready in (judged, bare, replace(bare, verified_publisher=VerifiedPublisher("1", "", None))):
        assert validator("Readiness").is_valid(ready.to_json()), ready.to_json()
        assert validator("TenantView").is_valid(replace(minimal, readiness=ready).to_json())
    assert not validator("Readiness").is_valid(replace(judged, ready=True).to_json())  # ready, yet something missing
    assert not validator("Readiness").is_valid(replace(bare, ready=False).to_json())  # not ready, yet nothing missing
    unknown = Readiness.unreadable("microsoft-graph: 503 ServiceUnavailable", "https://login.example/common/x")
    assert set(unknown.to_json()) == set(unknown_schema["properties"]) == set(unknown_schema["required"])
    unknown_consent: dict[str, Any] = unknown.to_json()["consent"]  # type: ignore[assignment]
    assert set(unknown_consent) == set(unknown_schema["properties"]["consent"]["required"])
    assert validator("Readiness").is_valid(unknown.to_json())
    assert validator("TenantView").is_valid(replace(full, readiness=unknown).to_json())

    # PATCH /api/tenants/{tenant}'s answer.
    result_schema = schema("BrandingResult")
    profile = AppProfile("o", "c", info=InfoUrls(marketing_url="https://m"), logo_url="https://cdn/logo")
    for changed in ((), ("logo",), ("info",), ("logo", "info")):
        result = BrandingResult("acme", "o", changed, profile).to_json()
        assert set(result) == set(result_schema["properties"]) == set(result_schema["required"])
        assert validator("BrandingResult").is_valid(result), result
    shown = result_schema["properties"]["branding"]
    result_branding: dict[str, Any] = result["branding"]  # type: ignore[assignment]
    assert set(result_branding) == set(shown["properties"]) == set(shown["required"])
    assert result_schema["properties"]["changed"]["items"]["enum"] == ["logo", "info"]
    nylas = view["properties"]["nylas"]
    full_nylas: dict[str, str] = full.to_json()["nylas"]  # type: ignore[assignment]
    minimal_nylas: dict[str, str] = minimal.to_json()["nylas"]  # type: ignore[assignment]
    assert set(full_nylas) == set(nylas["properties"])
    assert set(minimal_nylas) == set(nylas["required"])
    assert validator("TenantView").is_valid(full.to_json())
    retired = schema("RetireResult")
    answer = RetireResult("acme", False, ("k",), True, True, ("s",), ("n",)).to_json()
    assert set(answer) == set(retired["properties"]) == set(retired["required"])
    assert set(RetireResult("acme").to_json()) == set(retired["required"])
    assert validator("RetireResult").is_valid(answer)

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


PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)  # the parser reads no more of an image than its first bytes
JPEG = b"\xff\xd8\xff\xe0" + bytes(12)
BMP = b"BM" + bytes(14)
TOO_BIG_PNG = PNG[:8] + bytes(rq.MAX_LOGO_BYTES + 1 - 8)  # 136536 characters of base64: the schema's maximum


def logo_of(data: bytes, content_type: str = "image/png") -> dict[str, str]:
    return {"contentType": content_type, "base64": base64.b64encode(data).decode()}


def logo_refused_once_decoded(body: dict[str, Any]) -> bool:
    """Whether a body the schema accepts (a ProvisionRequest or a BrandingUpdate) has a logo that breaks
    the rules ``Logo.base64``'s description states: at most 100 KB once decoded, and the first bytes of
    its ``contentType``."""
    branding = body.get("branding")
    logo = branding.get("logo") if isinstance(branding, dict) else None
    if not isinstance(logo, dict) or logo.get("contentType") not in ("image/png", "image/jpeg", "image/bmp"):
        return False
    try:
        data = base64.b64decode(logo.get("base64", ""), validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False  # not base64: the schema's to refuse
    return len(data) > rq.MAX_LOGO_BYTES or not data.startswith(rq.LOGO_TYPES[logo["contentType"]])


BRANDING_GOOD: list[Any] = [
    {"marketingUrl": "https://a.example"},
    {"supportUrl": "https://a.b:8443/x?y=1#z", "termsOfServiceUrl": "https://t.example/" + "p" * 2030},
    {"privacyStatementUrl": "https://localhost/privacy", "logo": logo_of(PNG)},
    {"logo": logo_of(JPEG, "image/jpeg")},
    {"logo": logo_of(BMP, "image/bmp")},
    {"logo": logo_of(PNG, "image/bmp")},  # another type's bytes: refused by the parser alone
    {"logo": logo_of(TOO_BIG_PNG)},  # over 100 KB once decoded: likewise
]
BRANDING_BAD: list[Any] = [
    {},
    {"homePageUrl": "https://a.example"},
    {"marketingUrl": "http://a.example"},
    {"supportUrl": "https://a.example/a b"},
    {"termsOfServiceUrl": "https://" + "a" * 2041},
    {"logo": {"contentType": "image/gif", "base64": "R0lGODlh"}},
    {"logo": {"contentType": "image/png"}},
    {"logo": {"contentType": "image/png", "base64": "not base64!"}},
    {"logo": {"contentType": "image/png", "base64": ""}},
    {"logo": logo_of(PNG) | {"url": "https://a.example/logo.png"}},
    {"logo": logo_of(PNG[:8] + bytes(rq.MAX_LOGO_BYTES))},  # 136544 characters: longer than the schema allows
    "https://a.example",
    None,
]

ACCEPTED = [
    ("minimal-v3", body_with()),
    ("default-target", nylas_with(target=ABSENT)),
    ("v3-credential", nylas_with(target="v3-credential")),
    ("v3-credential-secret-name", nylas_with(target=ABSENT, credential=ABSENT, credentialSecret="kv-api-key")),
    ("v2-inline", nylas_with(target="v2-integration")),
    ("v2-secret-name", nylas_with(target="v2-integration", credential=ABSENT, credentialSecret="kv-v2-secret")),
    ("manual", nylas_with(target="manual", credential=ABSENT)),
    ("eu", nylas_with(region="eu") | {"auth": {"mode": "hosted", "region": "eu"}}),
    ("single-org", body_with(audience="single-org")),
    ("multi-org", body_with(audience="multi-org")),
    ("personal", body_with(audience="any-org-and-personal")),
    ("v2-single-org", nylas_with(target="v2-integration") | {"audience": "single-org"}),
    ("native", body_with(auth={"mode": "native", "redirectUri": "https://a.example:8443/cb"})),
    ("custom", body_with(auth={"mode": "custom", "redirectUri": "https://a.example:8443/cb"})),
    (
        "custom-query-work-accounts",
        body_with(audience="multi-org", auth={"mode": "custom", "redirectUri": "https://a.b/c?x=1"}),
    ),
    (
        "native-query-v2",
        nylas_with(target="manual", credential=ABSENT)
        | {"auth": {"mode": "native", "redirectUri": "https://a.b/c?x=1"}},
    ),
    ("native-bare-host", body_with(auth={"mode": "native", "redirectUri": "https://localhost"})),
    ("hosted-eu-v2", nylas_with(target="v2-integration") | {"auth": {"mode": "hosted", "region": "eu"}}),
    ("slug-40", body_with(tenant="a" * 40)),
    ("slug-dashes", body_with(tenant="a1-b2-c3")),
    ("name-90-personal", body_with(displayName="x" * 90)),
    ("name-90-padded-personal", body_with(displayName="  " + "x" * 90 + "\u3000")),
    ("name-120-work-accounts", body_with(displayName="x" * 120, audience="single-org")),
    ("name-120-v2", nylas_with(target="v2-integration") | {"displayName": "x" * 120}),
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
    ("scopes-one", body_with(scopes=["Mail.Read"])),
    ("scopes-every-name", body_with(scopes=list(GRAPH_DELEGATED_SCOPES))),
    ("scopes-any-spelling", body_with(scopes=["mail.read", "HTTPS://graph.microsoft.com/Calendars.Read", "OPENID"])),
    ("scopes-v3-credential", nylas_with(target=ABSENT) | {"scopes": ["User.Read"]}),
    ("replaces", body_with(replaces="globex-eu")),
    ("replaces-40", body_with(replaces="r" * 40)),
    ("branding-links", body_with(branding={"privacyStatementUrl": "https://a.example/p", "supportUrl": "https://s.b"})),
    ("branding-png", body_with(branding={"logo": logo_of(PNG)})),
    ("branding-jpeg-v2", nylas_with(target="v2-integration") | {"branding": {"logo": logo_of(JPEG, "image/jpeg")}}),
    ("branding-bmp-and-link", body_with(branding={"logo": logo_of(BMP, "image/bmp"), "marketingUrl": "https://m.b"})),
    ("branding-100-kb", body_with(branding={"logo": logo_of(PNG[:8] + bytes(rq.MAX_LOGO_BYTES - 8))})),
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
    ("audience-personal-v2", nylas_with(target="v2-integration") | {"audience": "any-org-and-personal"}),
    ("audience-personal-manual", nylas_with(target="manual", credential=ABSENT) | {"audience": "any-org-and-personal"}),
    ("name-91-personal", body_with(displayName="x" * 91)),
    ("name-91-padded-personal", body_with(displayName=" " + "x" * 91 + " ", audience="any-org-and-personal")),
    ("name-121-work-accounts", body_with(displayName="x" * 121, audience="multi-org")),
    ("custom-query-personal", body_with(auth={"mode": "custom", "redirectUri": "https://a.b/c?x=1"})),
    ("native-query-personal", body_with(auth={"mode": "native", "redirectUri": "https://a.b/?"})),
    ("mode-unknown", body_with(auth={"mode": "popup", "redirectUri": "https://a.b/c"})),
    ("custom-with-region", body_with(auth={"mode": "custom", "region": "us"})),
    ("scopes-empty", body_with(scopes=[])),
    ("scopes-string", body_with(scopes="Mail.Read")),
    ("scopes-null", body_with(scopes=None)),
    ("scopes-number", body_with(scopes=[7])),
    ("scopes-unknown", body_with(scopes=["Mail.Read", "EAS.AccessAsUser.All"])),
    ("scopes-repeated", body_with(scopes=["Mail.Read", "Mail.Read"])),
    ("scopes-prefix-only", body_with(scopes=[GRAPH_SCOPE_PREFIX])),
    ("scopes-other-resource", body_with(scopes=["https://outlook.office.com/Mail.Read"])),
    ("scopes-v2", nylas_with(target="v2-integration") | {"scopes": ["Mail.Read"]}),
    ("scopes-manual", nylas_with(target="manual", credential=ABSENT) | {"scopes": ["Mail.Read"]}),
    ("replaces-not-slug", body_with(replaces="Old Tenant")),
    ("replaces-41", body_with(replaces="r" * 41)),
    ("replaces-null", body_with(replaces=None)),
    ("replaces-v2", nylas_with(target="v2-integration") | {"replaces": "old"}),
    ("replaces-manual", nylas_with(target="manual", credential=ABSENT) | {"replaces": "old"}),
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
    ("default-target-without-credential", nylas_with(target=ABSENT, credential=ABSENT)),
    ("missing-region", nylas_with(region=ABSENT)),
    ("missing-app-id", nylas_with(appId=ABSENT)),
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
    *((f"branding-bad-{i}", body_with(branding=bad)) for i, bad in enumerate(BRANDING_BAD)),
]

# The body of PATCH /api/tenants/{tenant}: the same branding object, alone.
UPDATES_ACCEPTED = [{"branding": good} for good in BRANDING_GOOD if not logo_refused_once_decoded({"branding": good})]
UPDATES_REJECTED = [
    *({"branding": bad} for bad in BRANDING_BAD),
    {},
    {"branding": {"marketingUrl": "https://a.example"}, "tenant": "acme"},
    {"logo": logo_of(PNG)},
    [],
]


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in ACCEPTED])
def test_request_the_schema_accepts_is_accepted_by_the_parser(body):
    assert schema_accepts("ProvisionRequest", body)
    assert parser_accepts(body)


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in REJECTED])
def test_request_the_schema_rejects_is_rejected_by_the_parser(body):
    assert not schema_accepts("ProvisionRequest", body)
    assert not parser_accepts(body)


@pytest.mark.parametrize("body", UPDATES_ACCEPTED)
def test_branding_update_the_schema_accepts_is_accepted_by_the_parser(body):
    assert schema_accepts("BrandingUpdate", body)
    assert update_parser_accepts(body)


@pytest.mark.parametrize("body", UPDATES_REJECTED)
def test_branding_update_the_schema_rejects_is_rejected_by_the_parser(body):
    assert not schema_accepts("BrandingUpdate", body)
    assert not update_parser_accepts(body)


def same_scope(name: str) -> str:
    """A scope name as the document reads it: any letter case, the Graph prefix or not."""
    lowered = name.lower()
    return lowered.removeprefix(GRAPH_SCOPE_PREFIX)


def parser_only_refusal(body: dict[str, Any]) -> bool:
    """Whether a body the schema accepts breaks one of the rules only the descriptions state."""
    if logo_refused_once_decoded(body):
        return True
    lifetime = body.get("secretLifetimeDays", 730)
    if "rotateBeforeDays" in body and body["rotateBeforeDays"] >= lifetime:
        return True
    if body.get("replaces", "") == body["tenant"]:
        return True
    names = [same_scope(s) for s in body.get("scopes", [])]
    if len(set(names)) != len(names):
        return True
    nylas, auth = body.get("nylas", {}), body.get("auth", {})
    v3 = str(nylas.get("target", "v3-credential")).startswith("v3-")
    return v3 and auth.get("mode") == "hosted" and auth.get("region") != nylas.get("region")


# The rules JSON Schema cannot state: a body the schema accepts and the parser refuses, the field the
# refusal names, the property whose description states the rule, and words of that description.
PARSER_ONLY = [
    (
        "rotate-before-lifetime",
        body_with(secretLifetimeDays=30, rotateBeforeDays=30),
        "rotateBeforeDays",
        "rotateBeforeDays",
        "shorter than `secretLifetimeDays`",
    ),
    (
        "rotate-before-365",
        body_with(rotateBeforeDays=365) | {"secretLifetimeDays": 365},
        "rotateBeforeDays",
        "rotateBeforeDays",
        "shorter than `secretLifetimeDays`",
    ),
    ("replaces-itself", body_with(replaces="acme"), "replaces", "replaces", "must not be the tenant itself"),
    (
        "v3-hosted-auth-in-another-region",
        body_with(auth={"mode": "hosted", "region": "eu"}),
        "auth.region",
        "auth",
        "must be the Nylas application's region",
    ),
    (
        "scopes-repeat-in-another-case",
        body_with(scopes=["Mail.Read", "mail.read"]),
        "scopes[1]",
        "scopes",
        "A name may appear once, in any spelling",
    ),
    (
        "scopes-repeat-with-prefix",
        body_with(scopes=["https://graph.microsoft.com/User.Read", "User.Read"]),
        "scopes[1]",
        "scopes",
        "A name may appear once, in any spelling",
    ),
    (
        "logo-over-100-kb-once-decoded",
        body_with(branding={"logo": logo_of(TOO_BIG_PNG)}),
        "branding.logo.base64",
        "branding",
        "must decode to at most 100 KB",
    ),
    (
        "logo-of-another-type",
        body_with(branding={"logo": logo_of(PNG, "image/jpeg")}),
        "branding.logo.base64",
        "branding",
        "an image of its `contentType` (its first bytes say which)",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "prop", "words"), [pytest.param(b, f, p, w, id=i) for i, b, f, p, w in PARSER_ONLY]
)
def test_rules_only_the_parser_checks_are_described_where_the_field_is(body, field, prop, words):
    assert schema_accepts("ProvisionRequest", body)
    assert parser_only_refusal(body)
    with pytest.raises(BadRequest) as refused:
        rq.parse_request(body)
    assert refused.value.field == field
    assert words in " ".join(schema("ProvisionRequest")["properties"][prop]["description"].split())
    overview = " ".join(operation("provision_tenant")["description"].split())
    stated = overview.split("rather than in the schema:", 1)[1].split("Every other rule", 1)[0]
    assert f"`{prop}`" in stated or f"`{prop}." in stated


# PATCH /api/tenants/{tenant}: the logo's rules JSON Schema cannot state (what its base64 decodes to).
PATCH_PARSER_ONLY = [
    ("logo-over-100-kb-once-decoded", {"branding": {"logo": logo_of(TOO_BIG_PNG)}}, "at most 100 KB"),
    ("png-sent-as-jpeg", {"branding": {"logo": logo_of(PNG, "image/jpeg")}}, "first bytes are those of"),
    ("jpeg-sent-as-bmp", {"branding": {"logo": logo_of(JPEG, "image/bmp")}}, "first bytes are those of"),
]


@pytest.mark.parametrize(("body", "words"), [pytest.param(b, w, id=i) for i, b, w in PATCH_PARSER_ONLY])
def test_logo_rules_only_the_parser_checks_are_described_for_the_patch_body(body, words):
    assert schema_accepts("BrandingUpdate", body)
    assert logo_refused_once_decoded(body)
    with pytest.raises(BadRequest) as refused:
        rq.parse_branding_update(body)
    assert refused.value.field == "branding.logo.base64"
    assert words in " ".join(schema("Logo")["properties"]["base64"]["description"].split())
    overview = " ".join(operation("update_tenant")["description"].split())
    assert "rather than in the schema" in overview.split("`Logo.base64`", 1)[1]
    assert "100 KB" in overview and "first bytes" in overview


# Per field: values the schema allows, and values it does not (ABSENT: the field is left out).
N = rq.MAX_DISPLAY_NAME_PERSONAL
SCOPES_GOOD = [
    ["Mail.Read"],
    ["mail.readwrite", "Mail.Send"],
    ["https://graph.microsoft.com/Calendars.Read", "OPENID"],
    ["User.Read", "user.read"],  # the same name twice: refused by the parser alone
    ["HTTPS://GRAPH.MICROSOFT.COM/people.read", "People.Read"],  # likewise
    list(GRAPH_DELEGATED_SCOPES),
]
FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "tenant": (["acme", "a" * 40, "a1-b2"], ["Acme", "a b", "a'b", "a--b", "-a", "", "a" * 41, None, 5, ABSENT]),
    "displayName": (
        [
            "Acme",
            " Acme ",
            "x" * 120,
            "Ünï ✓",
            "x" * N,
            "x" * (N + 1),
            " " + "x" * N + "\xa0",
            "\u3000" + "x" * (N + 1),
        ],
        ["", "  ", "x" * 121, "a\nb", None, [], ABSENT],
    ),
    "audience": (["multi-org", "single-org", "any-org-and-personal", ABSENT, ABSENT], ["anyone", None, ["multi-org"]]),
    "scopes": (
        [ABSENT, ABSENT, ABSENT, *SCOPES_GOOD],
        [[], "Mail.Read", ["EAS.AccessAsUser.All"], [7], ["Mail.Read"] * 2, None],
    ),
    "replaces": ([ABSENT, ABSENT, ABSENT, "globex-eu", "acme"], ["Old", "", "r" * 41, 5, None]),
    "secretLifetimeDays": ([1, 2, 30, 90, 730, 90.0, ABSENT], [731, 0, -5, 90.5, "90", True, None]),
    "rotateBeforeDays": ([1, 29, 30, 365, 30.0, ABSENT], [366, 0, "30", False, None]),
    "existingAppId": ([GUID, GUID.upper(), ABSENT], [GUID[:-1], "x", None, 7]),
    "branding": ([ABSENT] * len(BRANDING_GOOD) + BRANDING_GOOD, BRANDING_BAD),
    "extra": ([ABSENT], [{"nested": 1}]),
}
AUTH_FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "mode": (["hosted", "custom", "native"], ["popup", "Custom", None, ABSENT]),
    "region": (["us", "eu"], ["ap", {}, None]),
    "redirectUri": (
        [
            "https://app.example.com/cb",
            "https://a.b:443/x?y=1",
            "https://localhost",
            "https://a.b/" + "p" * 243,
            "https://a.b?",
        ],
        ["https://a.b/" + "p" * 244, "http://a.b/cb", "https://*.b/cb", "https://a.b/cb#f", "https://u@a.b/cb", 8],
    ),
}
NYLAS_FIELDS: dict[str, tuple[list[Any], list[Any]]] = {
    "target": ([*rq.TARGETS, ABSENT], ["v4", "V3-credential", None, 3]),
    "region": (["us", "eu"], ["apac", ["us"], ABSENT]),
    "appId": (["app-1", "a" * 128, "A.b_c-1"], ["a" * 129, "", "a b", "-x", 7, ABSENT]),
    "credential": (["nyk_1", "k" * 1024, ABSENT], ["k" * 1025, "", "a b", None, 5]),
    "credentialSecret": (["kv-name", "s" * 127, ABSENT], ["s" * 128, "", "kv_name", None]),
    "extra": ([ABSENT], [1]),
}


def one_in(odds: int) -> st.SearchStrategy[bool]:
    """True about once in odds draws. (Not ``integers(1, odds) == 1``: Hypothesis draws the bounds of a
    range far more often than their share.)"""
    return st.integers(0, 2**16 - 1).map(lambda n: n % odds == odds // 2)


@st.composite
def objects(draw: st.DrawFn, fields: dict[str, tuple[list[Any], list[Any]]], bad_odds: int) -> dict[str, Any]:
    """An object whose every field is usually allowed and sometimes (1 in bad_odds) not."""
    out = {}
    for key, (good, bad) in fields.items():
        pool = bad if draw(one_in(bad_odds)) else good
        value = draw(st.sampled_from(pool))
        if value is not ABSENT:
            out[key] = value
    return out


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(objects(FIELDS, 40))
    auth = draw(objects(AUTH_FIELDS, 40))
    # Mostly a coherent auth object: hosted has a region, custom and native a redirect URI.
    if not draw(one_in(6)):
        auth.pop("redirectUri" if auth.get("mode") == "hosted" else "region", None)
    body["auth"] = auth
    nylas = draw(objects(NYLAS_FIELDS, 40))
    if not draw(one_in(6)):  # mostly the credential the target needs, and only that one
        if nylas.get("target") == "manual":
            nylas.pop("credential", None)
            nylas.pop("credentialSecret", None)
        elif "credential" in nylas and "credentialSecret" in nylas:
            nylas.pop(draw(st.sampled_from(["credential", "credentialSecret"])))
    v2 = nylas.get("target") in ("v2-integration", "manual")
    if v2 and not draw(one_in(4)):  # mostly what a v2 target allows
        body.pop("scopes", None)
        body.pop("replaces", None)
        if body.get("audience") == "any-org-and-personal":
            del body["audience"]
    body["nylas"] = nylas
    for key in ("auth", "nylas"):
        if draw(one_in(30)):
            body[key] = draw(st.sampled_from([None, "x", [], ABSENT]))
            if body[key] is ABSENT:
                del body[key]
    return body


@settings(max_examples=1500, deadline=None)
@given(requests())
def test_schema_and_parser_agree_on_generated_requests(body):
    expected = schema_accepts("ProvisionRequest", body) and not parser_only_refusal(body)
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


def patch(tenant: str, body: Any = None, *, content_type: str = "application/json", raw: bytes | None = None):
    request = http_request(
        "PATCH", f"{URL}/{tenant}", body, route_params={"tenant": tenant}, content_type=content_type, raw=raw
    )
    return update_tenant(request)


def assert_accepted(response) -> dict[str, Any]:
    """A 202 of POST /api/tenants: documented, ``status`` and ``Location`` the tenant's status path."""
    assert response.status_code == 202, response.get_body()
    accepted: dict[str, Any] = assert_documented("provision_tenant", response, body_schema="TenantAccepted")
    assert accepted["status"] == response.headers["Location"] == f"/api/tenants/{accepted['tenant']}"
    assert response.headers["Retry-After"] == "10"
    assert accepted["rotationState"] in ("pending", "verified")
    return accepted


def delete(tenant: str, **params: str) -> func.HttpResponse:
    request = func.HttpRequest(
        method="DELETE", url=f"{URL}/{tenant}", headers={}, params=params, route_params={"tenant": tenant}, body=b""
    )
    response: func.HttpResponse = retire_tenant(request)
    return response


def test_handlers_answer_with_the_documented_status_and_schema(svc, emulators):
    v3 = tenant_body("acme", "v3-connector")
    manual = tenant_body("initech", "manual")
    credential = tenant_body("umbrella")  # the default target, v3-credential
    v2 = tenant_body("globex-eu", "v2-integration", audience="single-org")
    successor = tenant_body("globex", "v3-credential", replaces="globex-eu", scopes=["mail.read", "User.Read"])
    for body in (v3, manual, credential, v2, successor):
        register_nylas(emulators, body)

    # A new tenant answers 202 (pending); the same request again while the queue has not run, the same 202.
    first = assert_accepted(post(v3))
    assert first["rotationState"] == "pending"
    assert assert_accepted(post(v3))["keyId"] == first["keyId"]
    accepted = {body["tenant"]: assert_accepted(post(body)) for body in (manual, credential, v2)}
    drain_queue(svc)  # the queue proves, pushes and finishes
    accepted["globex"] = assert_accepted(post(successor))  # the v2 tenant it replaces exists now
    drain_queue(svc)
    # Settled: the same request answers 200 with the tenant (a TenantView, no `status`).
    again = post(v3)
    assert again.status_code == 200, again.get_body()
    settled = assert_documented("provision_tenant", again, body_schema="TenantView")
    assert "status" not in settled and again.headers["Location"] == "/api/tenants/acme"
    assert (settled["keyId"], settled["rotationState"]) == (first["keyId"], "current")

    def status_of(tenant: str) -> dict[str, Any]:
        view: dict[str, Any] = assert_documented("get_tenant", one(tenant, get_tenant_http), body_schema="TenantView")
        assert "status" not in view and "readiness" in view
        return view

    assert status_of("initech")["rotationState"] == "awaiting-confirmation"
    made = status_of("umbrella")
    assert made["audience"] == rq.DEFAULT_AUDIENCE and made["nylas"]["credentialId"] and made["hostedAuthUrl"]
    assert "credentialId" not in accepted["umbrella"]["nylas"]  # made at Nylas by the queued run
    assert accepted["umbrella"]["redirectUri"] == rq.HOSTED_REDIRECTS[3]["us"]
    old = accepted["globex-eu"]
    assert (old["audience"], old["redirectUri"]) == ("single-org", rq.HOSTED_REDIRECTS[2]["us"])
    assert accepted["globex"]["replaces"] == status_of("globex")["replaces"] == "globex-eu"
    ready = status_of("acme")["readiness"]
    assert (ready["ready"], ready["consent"]["userConsent"]) == (False, "restricted")
    assert "no verified publisher" in ready["missing"]

    # PATCH: the app's branding, then the same body again, which writes nothing.
    links = {"privacyStatementUrl": "https://acme.example/privacy", "termsOfServiceUrl": "https://acme.example/t"}
    body = {"branding": links | {"logo": logo_of(PNG)}}
    branded = assert_documented("update_tenant", patch("acme", body), body_schema="BrandingResult")
    assert (branded["tenant"], branded["changed"]) == ("acme", ["logo", "info"])
    assert branded["branding"]["termsOfServiceUrl"] == links["termsOfServiceUrl"] and branded["branding"]["logoUrl"]
    emulators.world.reset_calls()
    unchanged = assert_documented("update_tenant", patch("acme", body), body_schema="BrandingResult")
    assert unchanged["changed"] == [] and unchanged["branding"] == branded["branding"]
    assert not writes(dict(emulators.world.calls)), writes(dict(emulators.world.calls))
    assert emulators.world.calls["graph.get_application"] == 1  # one read of the app, compared with the body
    ready = status_of("acme")["readiness"]
    assert ready["branding"] == {"marketingUrl": None, **links, "supportUrl": None, "logo": True}
    assert "no terms of service URL" not in ready["missing"]
    # The app cannot be read: the status still answers 200, its readiness says why.
    emulators.world.faults.inject("graph.get_application", status=404, times=1)
    unreadable = status_of("acme")["readiness"]
    assert (unreadable["ready"], set(unreadable)) == (False, {"ready", "missing", "advice", "error", "consent"})
    listed = assert_documented("list_tenants", list_tenants_http(http_request("GET", URL)), body_schema="TenantList")
    assert listed["count"] == 5
    assert {t["tenant"]: t.get("replacedBy") for t in listed["tenants"]}["globex-eu"] == "globex"
    assert_documented("get_tenant", one("acme", get_tenant_http), body_schema="TenantView")
    assert_documented("get_tenant", one("umbrella", get_tenant_http), body_schema="TenantView")
    assert_documented("rotate_tenant", one("acme", rotate_tenant, "/rotate"), body_schema="RotationQueued")
    confirmed = assert_documented(
        "confirm_rotation", one("initech", confirm_rotation, "/rotation/confirm"), body_schema="RotationConfirmed"
    )
    assert confirmed["result"] == "rotated"
    retired = assert_documented("retire_tenant", delete("umbrella", confirm="umbrella"), body_schema="RetireResult")
    assert (retired["alreadyRetired"], retired["nylasCredentialDeleted"], retired["appDeleted"]) == (False, True, False)
    assert retired["revokedKeyIds"]
    twice = assert_documented("retire_tenant", delete("umbrella", confirm="umbrella"), body_schema="RetireResult")
    assert twice["alreadyRetired"] is True
    gone = assert_documented(
        "retire_tenant", delete("initech", confirm="initech", deleteApp="True"), body_schema="RetireResult"
    )
    assert gone["appDeleted"] is True

    # Conflicts: a connector already held, an application without a connector, a tenant being retired.
    emulators.world.nylas.add_v3_app("nylas-bare", "nyk_v3_bare_key_0001", "us")
    bare = tenant_body("bare") | {
        "nylas": {"region": "us", "appId": "nylas-bare", "credential": "nyk_v3_bare_key_0001"}
    }
    latest = svc.deps.vault.get(secret_name(svc.settings.secret_prefix, "globex"))
    record = TenantRecord.from_tags(latest.tags)
    assert record is not None
    svc.deps.vault.update_tags(latest.name, latest.version, record.moved_to(RotationState.RETIRING).to_tags())
    conflicts = [
        (post(tenant_body("hooli", "v3-connector", nylas_app="nylas-acme")), "nylas.appId"),
        (post(bare), "nylas.appId"),
        (post(successor), "tenant"),
        (post({**v3, "existingAppId": GUID}), "existingAppId"),
    ]
    for response, field in conflicts:
        assert response.status_code == 409, response.get_body()
        error = assert_documented("provision_tenant", response, body_schema="Error")["error"]
        assert (error["code"], error["field"]) == ("conflict", field)

    jpeg_as_png = logo_of(JPEG, "image/png")
    errors = [
        ("provision_tenant", post(body_with(tenant="Acme")), 400, "tenant"),
        ("provision_tenant", post(body_with(scopes=["Mail.Read", "EAS.AccessAsUser.All"])), 400, "scopes[1]"),
        (
            "provision_tenant",
            post(nylas_with(target="manual", credential=ABSENT) | {"scopes": ["Mail.Read"]}),
            400,
            "scopes",
        ),
        ("provision_tenant", post(body_with(replaces="acme")), 400, "replaces"),
        ("provision_tenant", post(body_with(displayName="x" * 91)), 400, "displayName"),
        (
            "provision_tenant",
            provision_tenant(http_request("POST", URL, v3, content_type="text/plain")),
            415,
            "Content-Type",
        ),
        ("get_tenant", one("nobody", get_tenant_http), 404, "tenant"),
        ("get_tenant", one("No Body", get_tenant_http), 400, "tenant"),
        ("rotate_tenant", one("nobody", rotate_tenant, "/rotate"), 404, "tenant"),
        ("confirm_rotation", one("acme", confirm_rotation, "/rotation/confirm"), 409, "tenant"),
        ("retire_tenant", delete("acme"), 400, "confirm"),
        ("retire_tenant", delete("acme", confirm="ACME"), 400, "confirm"),
        ("retire_tenant", delete("acme", confirm="acme", deleteApp="yes"), 400, "deleteApp"),
        ("retire_tenant", delete("No Body", confirm="No Body"), 400, "tenant"),
        ("retire_tenant", delete("nobody", confirm="nobody"), 404, "tenant"),
        (
            "provision_tenant",
            provision_tenant(http_request("POST", URL, raw=b" " * (rq.MAX_BODY_BYTES + 1))),
            413,
            "body",
        ),
        ("update_tenant", patch("acme", {"branding": {}}), 400, "branding"),
        ("update_tenant", patch("acme", {"branding": {"logo": jpeg_as_png}}), 400, "branding.logo.base64"),
        ("update_tenant", patch("acme", {"branding": links, "displayName": "x"}), 400, "displayName"),
        ("update_tenant", patch("No Body", body), 400, "tenant"),
        ("update_tenant", patch("nobody", body), 404, "tenant"),
        ("update_tenant", patch("globex", body), 409, "tenant"),  # being retired
        ("update_tenant", patch("acme", body, content_type="text/plain"), 415, "Content-Type"),
        ("update_tenant", patch("acme", raw=b" " * (rq.MAX_BRANDING_BODY_BYTES + 1)), 413, "body"),
    ]
    for operation_id, response, status, field in errors:
        assert response.status_code == status, (operation_id, response.get_body())
        error = assert_documented(operation_id, response, body_schema="Error")["error"]
        assert error["field"] == field, (operation_id, error)
    assert assert_documented("get_tenant", one("acme", get_tenant_http))["rotationState"] != "retiring"
