"""Ready for production (issue 14): branding applied idempotently at provisioning, a readiness report per
tenant, and the operator's verified-publisher command, which only a signed-in person may run.

Against the emulators through the real handlers, the real CLI (``main``) and the real SDK clients. The
operator's sign-in is a fake ``az`` on PATH that answers ``az account get-access-token --output json
--resource R [--tenant T]`` as the Azure CLI does (azure-identity's AzureCliCredential runs it), with a token
the emulated Entra issues for a person of the directory. What was written is read from the emulated world's
request log and state, never from the service's own view."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import sys
import zlib
from dataclasses import replace
from typing import Any

import pytest

import bootstrap as factory
from core.errors import BadRequest, DependencyRejected
from devenv.scenario import register_nylas, tenant_body
from emulators.world import AZURE_CLI_CLIENT_ID
from provisioning.branding import LOGO_TAG_PREFIX, update_branding
from provisioning.publisher import signed_in_operator, token_claims
from provisioning.readiness import readiness_of
from provisioning.request import MAX_BRANDING_BODY_BYTES, parse_body, parse_branding_update
from rotator.cli import main
from tests.support import drain_queue, http_request, response_json

URL = "https://func.example/api/tenants"
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
MPN_ID = "6543210"
DOMAIN = "contoso.example"
ADMIN = f"ada@{DOMAIN}"


def png(width: int = 215, height: int = 215, pad: int = 0) -> bytes:
    """A real PNG (one colour), ``pad`` bytes of an ancillary chunk to make it larger."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x10\x60\xb0" * width for _ in range(height))
    extra = chunk(b"tEXt", b"Comment\x00" + b"x" * pad) if pad else b""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


LOGO = png()
BRANDING = {
    "marketingUrl": f"https://www.{DOMAIN}/mail-sync",
    "privacyStatementUrl": f"https://www.{DOMAIN}/privacy",
    "termsOfServiceUrl": f"https://www.{DOMAIN}/terms",
    "supportUrl": f"https://support.{DOMAIN}/",
    "logo": {"contentType": "image/png", "base64": base64.b64encode(LOGO).decode()},
}

# What the Azure CLI prints for `az account get-access-token --output json --resource R` (azure-identity's
# AzureCliCredential runs exactly that, plus --tenant, and parses accessToken and expires_on/expiresOn).
FAKE_AZ = r"""#!{python}
import json, os, ssl, sys, urllib.request

args = sys.argv[1:]
if args[:2] != ["account", "get-access-token"]:
    print("ERROR: this fake az only knows 'account get-access-token'", file=sys.stderr)
    sys.exit(2)

def option(name):
    return args[args.index(name) + 1] if name in args else None

resource = option("--resource") or (option("--scope") or "").removesuffix("/.default")
user = os.environ.get("FAKE_AZ_USER", "")
if not user:
    print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
    sys.exit(1)
body = {{"resource": resource}}
if user == "service-principal":
    body["service_principal"] = True
else:
    body["upn"] = user
request = urllib.request.Request(
    os.environ["FAKE_AZ_CONTROL"] + "/publisher/tokens",
    data=json.dumps(body).encode(),
    headers={{"Content-Type": "application/json"}},
)
context = ssl.create_default_context(cafile=os.environ["FAKE_AZ_CA"])
with urllib.request.urlopen(request, context=context) as answer:
    print(json.dumps(json.load(answer), indent=2))
"""


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def cli(capsys, emulators, svc):
    """Run the CLI in-process; returns (exit code, stdout, stderr), checks no secret was printed, and puts the
    test's services back after a run that built its own (``--credential azure-cli``)."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        finally:
            installed = factory._services
            if installed is not svc:
                factory.use_services(svc)
                if installed is not None:
                    installed.graph.close()
        out, err = capsys.readouterr()
        leaked = [s[:3] + "…" for s in emulators.world.secret_values() if s in out or s in err]
        assert not leaked, f"secret values (hints shown) printed by {argv}: {leaked}"
        return code, out, err

    return run


@pytest.fixture
def az(tmp_path, monkeypatch, emulators, env):
    """A fake ``az`` on PATH; ``az(upn)`` signs that person in (``az("service-principal")``: the service's own
    identity signed in with ``az login --service-principal``). The settings are in the environment, as an
    operator's shell has them, and the operator may read the vault (Key Vault Secrets User)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "az"
    script.write_text(FAKE_AZ.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_AZ_CONTROL", emulators.urls["control"])
    monkeypatch.setenv("FAKE_AZ_CA", emulators.ca_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    emulators.world.keyvault.allowed_clients.add(AZURE_CLI_CLIENT_ID)

    def sign_in(upn: str) -> None:
        monkeypatch.setenv("FAKE_AZ_USER", upn)

    return sign_in


def provision(emulators, name: str = "acme", **extra: Any) -> tuple[int, dict[str, Any]]:
    """POST /api/tenants through the real handler, then the queue until its follow-up is done (a new tenant
    answers 202); (status, answer)."""
    from blueprints.http_api import provision_tenant
    from bootstrap import services

    body = tenant_body(name, "v3-credential", **extra)
    register_nylas(emulators, body)
    response = provision_tenant(http_request("POST", URL, body))
    if response.status_code == 202:
        drain_queue(services())
    return response.status_code, response_json(response)


def writes(world, *, ok_only: bool = False) -> list[tuple[str, str, int]]:
    """Writes the service sent to Graph, Key Vault or Nylas (token requests and control calls are not)."""
    return [
        (route, method, status)
        for route, method, _, status in world.call_log
        if method in WRITE_METHODS
        and not route.startswith(("entra.", "control."))
        and (not ok_only or 200 <= status < 300)
    ]


def outside_calls(world) -> list[str]:
    return [route for route, _, _, _ in world.call_log if route.split(".", 1)[0] in {"graph", "keyvault", "nylas"}]


def portal_steps(emulators, object_id: str) -> None:
    """What a person does in Entra and Partner Center before the publisher command (docs/going-to-production.md):
    a DNS-verified custom domain made the app's publisher domain, a vetted partner account with that email
    domain, and an administrator of the directory."""
    publisher = emulators.world.publisher
    publisher.verify_domain(DOMAIN)
    publisher.set_publisher_domain(object_id, DOMAIN)
    publisher.add_partner(MPN_ID, "Contoso Ltd", DOMAIN)
    publisher.add_operator(ADMIN, ["Application Administrator"])


# --- branding at provisioning ------------------------------------------------------------


def test_a_tenant_provisioned_with_branding_shows_it_on_the_app_and_an_identical_request_writes_nothing(svc, emulators):
    world = emulators.world
    status, view = provision(emulators, branding=BRANDING)
    assert status == 202, view

    app = world.graph.apps[view["appObjectId"]]
    info = app.data["info"]
    assert {k: info[k] for k in ("marketingUrl", "privacyStatementUrl", "termsOfServiceUrl", "supportUrl")} == {
        k: BRANDING[k] for k in ("marketingUrl", "privacyStatementUrl", "termsOfServiceUrl", "supportUrl")
    }
    logo = world.publisher.logos[app.object_id]
    assert (logo.content_type, logo.data) == ("image/png", LOGO)
    assert info["logoUrl"].startswith("https://")
    digest = hashlib.sha256(LOGO).hexdigest()
    assert LOGO_TAG_PREFIX + digest in app.data["tags"]
    assert {"nylas-entra-rotator", "tenant:acme"} <= set(app.data["tags"])  # the tags it had stay

    world.reset_calls()
    status, again = provision(emulators, branding=BRANDING)

    assert status == 200 and again["clientId"] == view["clientId"]
    assert writes(world) == []  # not Graph, not Key Vault, not Nylas
    assert world.calls["graph.get_application"] == 1  # the app is compared with what Graph answers

    # A changed link is one PATCH (the whole info); the logo, unchanged, is not uploaded again.
    world.reset_calls()
    changed = {**BRANDING, "privacyStatementUrl": f"https://www.{DOMAIN}/privacy-2025"}
    status, _ = provision(emulators, branding=changed)
    assert status == 200
    assert writes(world) == [("graph.update_application", "PATCH", 204)]
    assert app.data["info"]["privacyStatementUrl"] == changed["privacyStatementUrl"]
    assert app.data["info"]["termsOfServiceUrl"] == BRANDING["termsOfServiceUrl"]
    assert world.publisher.logos[app.object_id].data == LOGO


def test_a_logo_removed_in_the_portal_is_uploaded_again_and_a_new_logo_replaces_the_old(svc, emulators):
    world = emulators.world
    _, view = provision(emulators, branding=BRANDING)
    oid = view["appObjectId"]
    prefix = svc.settings.secret_prefix

    world.publisher.logos.pop(oid)
    world.graph.apps[oid].data["info"]["logoUrl"] = None  # a person removed it
    world.reset_calls()
    result = update_branding(svc.deps, prefix, "acme", parse_branding_update({"branding": BRANDING}))
    assert result.changed == ("logo",)
    assert [w[0] for w in writes(world)] == ["graph.put_logo", "graph.update_application"]
    assert world.publisher.logos[oid].data == LOGO and result.profile.logo_url

    other = png(96, 96)
    body = {"branding": {"logo": {"contentType": "image/png", "base64": base64.b64encode(other).decode()}}}
    result = update_branding(svc.deps, prefix, "acme", parse_branding_update(body))
    assert result.changed == ("logo",) and world.publisher.logos[oid].data == other
    tags = world.graph.apps[oid].data["tags"]
    assert [t for t in tags if t.startswith(LOGO_TAG_PREFIX)] == [LOGO_TAG_PREFIX + hashlib.sha256(other).hexdigest()]

    world.reset_calls()
    assert update_branding(svc.deps, prefix, "acme", parse_branding_update(body)).changed == ()
    assert writes(world) == []


@pytest.mark.parametrize(
    ("branding", "field"),
    [
        ({"logo": {"contentType": "image/gif", "base64": "R0lGODlhAQABAAAAACw="}}, "branding.logo.contentType"),
        ({"logo": {"contentType": "image/png", "base64": "not base64!"}}, "branding.logo.base64"),
        ({"logo": {"contentType": "image/jpeg", "base64": base64.b64encode(LOGO).decode()}}, "branding.logo.base64"),
        ({"logo": {"contentType": "image/png", "base64": ""}}, "branding.logo.base64"),
        ({"logo": {"contentType": "image/png"}}, "branding.logo.base64"),
        ({"logo": {"contentType": "image/png", "base64": "iVBORw0KGgo=", "url": "x"}}, "branding.logo.url"),
        ({"privacyStatementUrl": "http://www.contoso.example/privacy"}, "branding.privacyStatementUrl"),
        ({"termsOfServiceUrl": "https://" + "a" * 2048 + ".example"}, "branding.termsOfServiceUrl"),
        ({"homePageUrl": "https://www.contoso.example/"}, "branding.homePageUrl"),
        ({}, "branding"),
        ("https://www.contoso.example/", "branding"),
    ],
)
def test_bad_branding_is_a_400_naming_the_field_before_any_outside_call(svc, emulators, branding, field):
    from blueprints.http_api import provision_tenant

    body = tenant_body("acme", "v3-credential", branding=branding)
    register_nylas(emulators, body)
    emulators.world.reset_calls()

    response = provision_tenant(http_request("POST", URL, body))

    assert response.status_code == 400
    error = response_json(response)["error"]
    assert error["field"] == field and field.rsplit(".", 1)[-1] in error["message"]
    assert outside_calls(emulators.world) == []


def test_a_logo_over_100_kb_is_refused_naming_the_field_and_one_at_the_limit_is_taken(svc, emulators, cli, tmp_path):
    provision(emulators)
    big = png(pad=100 * 1024)
    body = {"branding": {"logo": {"contentType": "image/png", "base64": base64.b64encode(big).decode()}}}
    raw = json.dumps(body).encode()
    assert len(raw) <= MAX_BRANDING_BODY_BYTES  # the PATCH body limit lets a 100 KB logo through to the check
    with pytest.raises(BadRequest) as refused:
        parse_branding_update(parse_body(raw, "application/json", max_bytes=MAX_BRANDING_BODY_BYTES))
    assert refused.value.field == "branding.logo.base64" and "100 KB" in refused.value.message

    path = tmp_path / "big.png"
    path.write_bytes(big)
    emulators.world.reset_calls()
    code, out, err = cli("branding", "acme", "--logo", str(path))
    assert code == 2 and out == "" and "--logo" in err and "100 KB" in err
    assert outside_calls(emulators.world) == []

    limit = png(pad=100 * 1024 - len(png()) - 20)  # a tEXt chunk: 12 bytes of frame, "Comment\0", the padding
    assert len(limit) == 100 * 1024
    path.write_bytes(limit)
    code, out, err = cli("branding", "acme", "--logo", str(path))
    assert code == 0, err
    assert "logo" in out


def test_the_branding_command_takes_the_patch_body_from_a_file_and_refuses_the_operators_sign_in(
    svc, emulators, cli, az, tmp_path
):
    _, view = provision(emulators, branding=BRANDING)
    path = tmp_path / "branding.json"
    path.write_text(json.dumps({"branding": {"supportUrl": f"https://help.{DOMAIN}/"}}))
    world = emulators.world

    world.reset_calls()
    code, out, err = cli("branding", "acme", str(path))
    assert code == 0, err
    assert "branding updated: info" in out and f"https://help.{DOMAIN}/" in out
    assert writes(world) == [("graph.update_application", "PATCH", 204)]
    assert world.graph.apps[view["appObjectId"]].data["info"]["privacyStatementUrl"] == BRANDING["privacyStatementUrl"]

    world.reset_calls()
    code, out, _ = cli("branding", "acme", str(path), "--json")
    assert code == 0 and json.loads(out)["changed"] == [] and writes(world) == []

    code, _, err = cli("--credential", "azure-cli", "branding", "acme", str(path))
    assert code == 2 and "service identity" in err
    code, _, err = cli("branding", "nobody", str(path))
    assert code == 1 and "not provisioned" in err


# --- readiness and the publisher ------------------------------------------------------------


def test_status_says_not_ready_without_a_verified_publisher_and_ready_once_the_operator_sets_it(
    svc, emulators, cli, az
):
    world = emulators.world
    _, view = provision(emulators, branding=BRANDING)
    oid = view["appObjectId"]

    code, out, _ = cli("status", "acme")
    assert code == 0
    assert "not ready: no verified publisher" in out
    assert "emulated.onmicrosoft.com (an unverified *.onmicrosoft.com domain)" in out
    code, out, _ = cli("status", "acme", "--json")
    readiness = json.loads(out)["readiness"]
    assert readiness["ready"] is False and readiness["verifiedPublisher"] is None
    assert readiness["consent"]["userConsent"] == "restricted"
    assert readiness["consent"]["adminConsentUrl"].endswith(f"/common/adminconsent?client_id={view['clientId']}")
    code, out, _ = cli("plan", "--readiness", "--json")
    (planned,) = json.loads(out)["tenants"]
    assert planned["ready"] is False and "no verified publisher" in planned["notReady"]

    portal_steps(emulators, oid)
    az(ADMIN)
    world.reset_calls()
    code, out, err = cli("publisher", "set", "acme", "--mpn-id", MPN_ID, "--credential", "azure-cli")

    assert code == 0, err
    assert "Contoso Ltd (MPN 6543210)" in out and f"signed in as {ADMIN}" in out
    assert world.graph.apps[oid].data["verifiedPublisher"]["verifiedPublisherId"] == MPN_ID
    assert writes(world) == [("graph.set_verified_publisher", "POST", 204)]
    code, out, _ = cli("status", "acme")
    assert code == 0 and [line.split() for line in out.splitlines() if line.startswith("production")] == [
        ["production", "ready"]
    ]
    code, out, _ = cli("--json", "status", "acme")
    readiness = json.loads(out)["readiness"]
    assert readiness["ready"] is True and readiness["missing"] == []
    assert readiness["verifiedPublisher"]["id"] == MPN_ID and readiness["publisherDomain"] == DOMAIN
    assert readiness["consent"]["userConsent"] == "allowed-where-verified-publishers-are"

    # Again: nothing to write. Then unset: not ready any more.
    world.reset_calls()
    code, out, _ = cli("--credential", "azure-cli", "publisher", "set", "acme", "--mpn-id", MPN_ID)
    assert code == 0 and "nothing to do" in out and writes(world) == []
    code, out, _ = cli("--credential", "azure-cli", "--json", "publisher", "unset", "acme")
    assert code == 0 and json.loads(out)["changed"] is True and json.loads(out)["readiness"]["ready"] is False
    assert world.graph.apps[oid].data["verifiedPublisher"]["verifiedPublisherId"] is None


def test_the_publisher_command_without_an_az_login_says_to_sign_in(svc, emulators, cli, az):
    provision(emulators)
    az("")  # az answers "Please run 'az login' to setup account."
    code, out, err = cli("--credential", "azure-cli", "publisher", "unset", "acme")
    assert code == 1 and out == "" and "az login" in err and "hint: Sign in as yourself" in err


def test_the_publisher_command_refuses_the_services_own_identity_naming_the_permission_and_calls_nothing(
    svc, emulators, cli, az
):
    _, view = provision(emulators, branding=BRANDING)
    portal_steps(emulators, view["appObjectId"])
    world = emulators.world

    world.reset_calls()
    code, out, err = cli("publisher", "set", "acme", "--mpn-id", MPN_ID)  # the service's client secret
    assert code == 2 and out == ""
    assert "Application.ReadWrite.All" in err and "delegated" in err and "client secret" in err
    assert outside_calls(world) == []  # not even a read: refused by the kind of credential

    az("service-principal")  # az login --service-principal as the service's identity: an application token
    world.reset_calls()
    code, out, err = cli("publisher", "set", "acme", "--mpn-id", MPN_ID, "--credential", "azure-cli")
    assert code == 2 and out == ""
    assert "Application.ReadWrite.All" in err and "application token" in err
    assert outside_calls(world) == []  # refused by the token's claims, before Graph
    assert world.graph.apps[view["appObjectId"]].data.get("verifiedPublisher") in (None, {})


def test_graph_itself_refuses_an_application_token_for_set_verified_publisher(svc, emulators):
    """The emulated Graph, as the service's own client sees it (the shape is UNCONFIRMED, see emulators/graph.py)."""
    _, view = provision(emulators)
    portal_steps(emulators, view["appObjectId"])
    with pytest.raises(DependencyRejected) as refused:
        svc.graph.set_verified_publisher(view["appObjectId"], MPN_ID)
    assert refused.value.status == 403 and refused.value.error_code == "Authorization_RequestDenied"
    assert "presence of both a user and an application" in refused.value.message
    assert ("graph.set_verified_publisher", "POST", 403) in writes(emulators.world)
    assert emulators.world.graph.apps[view["appObjectId"]].data.get("verifiedPublisher") in (None, {})


def test_a_user_without_the_role_gets_a_clear_error_and_nothing_is_written(svc, emulators, cli, az):
    _, view = provision(emulators, branding=BRANDING)
    portal_steps(emulators, view["appObjectId"])
    emulators.world.publisher.add_operator(f"bob@{DOMAIN}", ["Global Reader"])
    az(f"bob@{DOMAIN}")
    world = emulators.world
    world.reset_calls()

    code, out, err = cli("--credential", "azure-cli", "publisher", "set", "acme", "--mpn-id", MPN_ID)

    assert code == 1 and out == ""
    assert "Application.ReadWrite.All" in err and "Application Administrator" in err
    assert "Cloud Application Administrator" in err and "NotAuthorizedToVerifyPublisher" in err
    assert writes(world, ok_only=True) == []
    assert writes(world) == [("graph.set_verified_publisher", "POST", 403)]
    assert world.graph.apps[view["appObjectId"]].data.get("verifiedPublisher") in (None, {})


def test_a_publisher_domain_still_on_onmicrosoft_is_explained_with_the_portal_step(svc, emulators, cli, az):
    _, view = provision(emulators, branding=BRANDING)
    emulators.world.publisher.add_partner(MPN_ID, "Contoso Ltd", DOMAIN)
    emulators.world.publisher.add_operator(ADMIN, ["Cloud Application Administrator"])
    az(ADMIN)
    emulators.world.reset_calls()

    code, _, err = cli("--credential", "azure-cli", "publisher", "set", "acme", "--mpn-id", MPN_ID)

    assert code == 1
    assert "PublisherDomainMismatch" in err and "publisher domain" in err and "portal" in err
    assert "docs/going-to-production.md" in err
    assert writes(emulators.world) == [("graph.set_verified_publisher", "POST", 400)]
    assert emulators.world.graph.apps[view["appObjectId"]].data.get("verifiedPublisher") in (None, {})


# --- the readiness judgement itself (pure) ------------------------------------------------------


def test_readiness_names_what_a_v2_app_needs_an_admin_for_and_a_single_org_app_needs_no_links(svc, emulators):
    from core.ports import AppProfile, InfoUrls, VerifiedPublisher
    from core.record import Audience, NylasTarget, RotationState, TenantRecord

    record = TenantRecord(
        "globex", "oid", "cid", "kid", RotationState.CURRENT, Audience.MULTI_ORG.value, NylasTarget.V2_INTEGRATION,
        "us", "app", "ref", 730, 30,
    )  # fmt: skip
    place = {"id": "cb8f45a0-5c2e-4ea1-b803-84b870a7d7ec", "type": "Scope"}
    graph = {"resourceAppId": "00000003-0000-0000-c000-000000000000", "resourceAccess": [place]}
    profile = AppProfile("oid", "cid", publisher_domain=DOMAIN, required_resource_access=(graph,))
    verdict = readiness_of(profile, record, consent_url="u", manifest_admin_consent=("Place.Read.All",))
    assert verdict.admin_consent_for == ("Place.Read.All",) and verdict.user_consent == "admin-only"
    assert verdict.missing == ("no verified publisher", "no privacy statement URL", "no terms of service URL")

    single = readiness_of(
        AppProfile("oid", "cid", publisher_domain="x.onmicrosoft.com", verified_publisher=VerifiedPublisher()),
        replace(record, audience=Audience.SINGLE_ORG.value),
        consent_url="u",
    )
    assert single.ready and single.user_consent == "own-directory"
    assert "no verified publisher" in single.advice

    ready = readiness_of(
        AppProfile(
            "oid",
            "cid",
            publisher_domain=DOMAIN,
            verified_publisher=VerifiedPublisher("1", "Contoso"),
            info=InfoUrls(privacy_statement_url="https://p", terms_of_service_url="https://t"),
            logo_url="https://cdn/logo",
        ),
        record,
        consent_url="u",
    )
    assert ready.ready and ready.summary() == "ready"


def test_token_claims_tell_an_application_from_a_person_without_verifying():
    def token(claims: dict[str, Any]) -> str:
        part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"e30.{part}.sig"

    person = signed_in_operator("azure-cli", token({"idtyp": "user", "scp": "Application.ReadWrite.All", "upn": "a@b"}))
    assert person.name == "a@b" and person.scopes == ("Application.ReadWrite.All",)
    assert signed_in_operator("azure-cli", "opaque-token").name == ""  # Graph will say
    for app_claims in ({"idtyp": "app", "roles": ["x"]}, {"roles": ["Application.ReadWrite.All"]}):
        with pytest.raises(BadRequest, match=r"Application\.ReadWrite\.All"):
            signed_in_operator("azure-cli", token(app_claims))
    for kind in ("managed-identity", "client-secret"):
        with pytest.raises(BadRequest, match=r"delegated permission Application\.ReadWrite\.All"):
            signed_in_operator(kind, None)
    assert token_claims("a.b") is None and token_claims("a.!!!.c") is None
