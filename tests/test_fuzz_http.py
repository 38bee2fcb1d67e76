"""Property-based requests from docs/openapi.yaml against the real HTTP handlers (issue #8).

Every operation of the document gets requests that fit its schemas and requests that break them
(schemathesis, positive and negative generation), plus hand-made ones schemathesis does not make:
raw bytes, content types, path parameters in unicode, very long, empty or almost a slug. Each goes
to its handler in blueprints/http_api.py as a real ``func.HttpRequest`` (``route_params`` for
``{tenant}``), with the service wired to the HTTPS emulators and Azurite. Every answer is checked:

- never a 5xx;
- its status is documented for the operation, and its body fits the documented schema (every
  4xx: ``{"error": {"code", "message", "field"}}`` with a code and a message);
- a request the document calls invalid gets a 4xx and makes no outside call at all;
- a 4xx makes no outside write (the document: "a request refused with 4xx made no change anywhere");
- neither the answer nor the log quotes a secret: the Nylas credential sent, or any secret the
  emulated world holds.

Valid provisioning requests provision for real (Nylas apps registered first) and must answer 202
(``pending``, ``Location`` and ``status`` the tenant's status), then the same 202 with no write when
sent again before the queue has run; once the queue has run the tenant is settled, and the same
request answers 200 with no write. ``PATCH /api/tenants/{tenant}`` gets schemathesis' bodies, real
logos and links, raw bytes and bad paths: a valid update answers 200 saying exactly what it wrote
(``changed``, from the app's state before it), and the same body again writes nothing.
``DELETE /api/tenants/{tenant}`` gets bad tenants, a missing or wrong ``confirm`` and bad
``deleteApp`` values, all refused with no outside call, and valid retirements of real tenants. The
count of requests is printed at the end of the module; ``BUDGET`` adds up to at least 1,000 and each
test checks it ran its share.

Rules the document states in words rather than in a schema are the oracle's too, spelled out where
they are used: ``rotateBeforeDays`` shorter than ``secretLifetimeDays``, ``replaces`` not the tenant,
``scopes`` naming each scope once in any spelling, a v3 target's hosted ``auth.region`` being the
Nylas application's region, a logo decoding to at most 100 KB of its ``contentType``'s bytes, and
``confirm`` repeating the tenant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

import provisioning.request as rq
from blueprints.http_api import (
    confirm_rotation,
    get_tenant_http,
    list_tenants_http,
    provision_tenant,
    retire_tenant,
    rotate_tenant,
    update_tenant,
)
from bootstrap import use_services
from core.record import SLUG, NylasTarget, secret_name
from devenv.wiring import local_services
from provisioning.branding import LOGO_TAG_PREFIX
from provisioning.graph_scopes import GRAPH_SCOPE_PREFIX
from tests.fuzz_support import (
    DOC_PATH,
    NOT_JSON,
    Call,
    Handler,
    call_from_case,
    document,
    forget_queued_work,
    json_media_type,
    max_body_bytes,
    operation,
    operations,
    outside,
    resolve,
    schema_errors,
    strings_in,
    writes,
)
from tests.support import drain_queue, provision, register_nylas, tenant_body

HANDLERS: dict[str, Handler] = {
    "provision_tenant": provision_tenant,
    "list_tenants": list_tenants_http,
    "get_tenant": get_tenant_http,
    "rotate_tenant": rotate_tenant,
    "confirm_rotation": confirm_rotation,
    "retire_tenant": retire_tenant,
    "update_tenant": update_tenant,
}
TENANT_OPS = ("get_tenant", "rotate_tenant", "confirm_rotation")
RETIRE = "retire_tenant"
UPDATE = "update_tenant"


def body_limit(operation_id: str) -> int:
    """The body limit the operation's 413 answer states."""
    limit = max_body_bytes(operation_id)
    assert limit is not None, operation_id
    return limit


MAX_BODY_BYTES = body_limit("provision_tenant")

# Examples per test. Valid provisioning is the slow share (a real provision, ~0.1 s, and the queued
# run that finishes it); the rest is mostly invalid input, refused before any outside call.
BUDGET = {
    "provision_valid": 80,
    "provision_invalid": 350,
    "provision_raw": 300,
    "tenant_operations": 350,
    "list_tenants": 60,
    "retire": 300,
    "update_tenant": 300,
}
RAN: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}  # per test: how often each status came back


def fuzz_settings(name: str) -> settings:
    return settings(
        max_examples=BUDGET[name],
        derandomize=True,  # the same cases on every run and in CI
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


class _CountReport:
    """Prints, in pytest's terminal summary, how many requests the fuzz tests sent."""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if RAN:
            terminalreporter.write_line(f"fuzz_http: {sum(RAN.values())} generated requests sent to the HTTP handlers")
            for name, count in RAN.items():
                statuses = ", ".join(f"{s}: {n}" for s, n in sorted(STATUSES[name].items()))
                terminalreporter.write_line(f"  {name}: {count} ({statuses})")


@pytest.fixture(scope="module", autouse=True)
def _report_count(request: pytest.FixtureRequest) -> None:
    if not request.config.pluginmanager.has_plugin("fuzz-http-count"):
        request.config.pluginmanager.register(_CountReport(), "fuzz-http-count")


@pytest.fixture(scope="module")
def api() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(document())


def strategy(api: schemathesis.BaseSchema, operation_id: str, mode: GenerationMode) -> st.SearchStrategy[Call]:
    """Schemathesis' requests for one operation, as the Functions host would hand them over."""
    path, method, _ = operation(operation_id)
    origin = f"schemathesis-{mode.value}"
    cases = api[path][method].as_strategy(generation_mode=mode)
    return cases.map(lambda c: call_from_case(c, operation_id, origin))


# --- the checks every answer passes ----------------------------------------------------------------

ROOT = DOC_PATH.parent.parent
# Text an answer may quote whatever was sent: the document, and the messages the code writes.
OUR_TEXT = "\n".join(
    (ROOT / f).read_text(encoding="utf-8")
    for f in (
        "docs/openapi.yaml",
        "provisioning/request.py",
        "provisioning/retire.py",
        "provisioning/branding.py",
        "blueprints/http_api.py",
        "blueprints/http_errors.py",
    )
)


def sent_json(call: Call) -> Any:
    body = call.body()
    if body is NOT_JSON:
        try:
            body = json.loads(call.raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    return body


def keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_in(item)


def sent_values(call: Call) -> set[str]:
    """The text values a caller sent (path and query parameters and body values, not field names),
    long enough to recognise: a refusal quotes none of them. A path value the document accepts names
    the resource (a refusal may say "repeat the tenant's name as confirm=acme"): not counted, nor is
    anything it contains."""
    body = sent_json(call)
    keys = list(keys_in(body))
    named = {v for k, v in call.route_params.items() if k not in call.parameter_problems("path")}
    values = (
        {v for v in strings_in(body) if v not in keys} | set(call.route_params.values()) | set(call.params.values())
    )
    return {
        v
        for v in values
        if len(v) >= 8 and v not in OUR_TEXT and not any(v in k for k in keys) and not any(v in n for n in named)
    }


def sent_credential(call: Call) -> str:
    body = sent_json(call)
    nylas = body.get("nylas") if isinstance(body, dict) else None
    credential = nylas.get("credential") if isinstance(nylas, dict) else None
    # Too short, or a word the document itself uses (an enum value an error may name): not a secret.
    if not isinstance(credential, str) or len(credential) < 8 or credential in OUR_TEXT:
        return ""
    return credential


def published_values(call: Call) -> set[str]:
    """What the caller sent that an answer may repeat: the body's text except the Nylas credential,
    and the path."""
    body = sent_json(call)
    nylas = body.get("nylas") if isinstance(body, dict) else None
    credential = nylas.get("credential") if isinstance(nylas, dict) else None
    values = list(strings_in(body))
    if isinstance(credential, str) and credential in values:
        values.remove(credential)  # once: the same text sent elsewhere too stays public
    return set(values) | set(call.route_params.values())


class Harness:
    """Sends a Call to its handler and checks the answer against the document and the world."""

    def __init__(self, emulators: Any, caplog: pytest.LogCaptureFixture, name: str) -> None:
        self.emulators = emulators
        self.caplog = caplog
        self.name = name
        self.statuses: Counter[int] = STATUSES.setdefault(name, Counter())
        self.invalid = 0
        # What the pinned examples alone reached: a coverage check rests on these, never on a draw
        # (derandomized draws inside the full suite have differed from those of a test run alone).
        self.pinned_statuses: Counter[int] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.pinned_outcomes: Counter[str] = Counter()

    def outcome(self, call: Call, name: str) -> None:
        self.outcomes[name] += 1
        if call.origin.startswith("pinned"):
            self.pinned_outcomes[name] += 1

    def send(self, call: Call) -> tuple[int, Any, dict[str, int]]:
        world = self.emulators.world
        world.reset_calls()
        logged = len(self.caplog.records)
        response = HANDLERS[call.operation_id](call.request())
        calls = dict(world.calls)
        RAN[self.name] += 1
        status = response.status_code
        self.statuses[status] += 1
        if call.origin.startswith("pinned"):
            self.pinned_statuses[status] += 1
        event(f"{call.operation_id} {status}")
        text = response.get_body().decode("utf-8")
        where = f"{call.describe()}\n-> {status} {text[:800]}\n   outside calls: {outside(calls)}"

        assert status < 500, where
        body = json.loads(text)
        self.check_documented(call, status, body, response.headers, where)
        if status >= 400:
            error = body["error"]
            assert isinstance(error["code"], str) and error["code"], where
            assert isinstance(error["message"], str) and error["message"], where
            assert "field" in error, where
            assert not writes(calls), f"a {status} wrote outside: {where}"
        problems = call.problems()
        if problems:
            self.invalid += 1
            assert 400 <= status < 500, f"invalid ({problems}) yet {status}: {where}"
            assert not outside(calls), f"invalid ({problems}) yet called outside: {where}"
            quoted = [v[:12] for v in sent_values(call) if v in text or any(v in t for t in strings_in(body))]
            assert not quoted, f"the refusal quotes values sent {quoted}: {where}"

        secrets = self.emulators.world.secret_values() | ({sent_credential(call)} - {""})
        # A secret the caller also sent as something public (an appId equal to the API key) may come back.
        public = published_values(call)
        secrets = {s for s in secrets if not any(s in p for p in public)}
        answered = [text, *strings_in(body)]
        leaked = [s[:3] + "…" for s in secrets if any(s in t for t in answered)]
        assert not leaked, f"the answer quotes secrets {leaked}: {where}"
        records = self.caplog.records[logged:]
        texts = [r.getMessage() + " " + str(r.__dict__) + (r.exc_text or "") for r in records]
        leaked = [s[:3] + "…" for s in secrets if any(s in t for t in texts)]
        assert not leaked, f"the log quotes secrets {leaked}: {where}"
        return status, body, calls

    @staticmethod
    def check_documented(call: Call, status: int, body: Any, headers: Any, where: str) -> None:
        answers = operation(call.operation_id)[2]["responses"]
        assert str(status) in answers, f"undocumented status: {where}"
        answer = resolve(answers[str(status)])
        media = answer["content"]["application/json"]
        name = media["schema"]["$ref"].rsplit("/", 1)[1]
        errors = schema_errors(name, body)
        assert not errors, f"answer does not fit {name}: {errors}: {where}"
        for header in answer.get("headers", {}):
            assert headers.get(header), f"header {header} missing: {where}"


# --- preparing the world for a valid provisioning request ------------------------------------------


def prepare(svc: Any, emulators: Any, body: dict[str, Any]) -> None:
    """The Nylas app the body names exists with the credential it gives (inline, or in the Key Vault
    secret it names), and for ``v3-credential`` with the Microsoft connector its credential goes
    under, so a valid request can provision for real."""
    nylas = body["nylas"]
    credential = nylas.get("credential", "")
    if nylas.get("credentialSecret"):
        credential = f"nylas-credential-in-key-vault-{len(nylas['credentialSecret']):04d}"
        tags = {"purpose": "nylas-credential", "tenant": body["tenant"]}  # marked as this tenant's Nylas key
        svc.deps.vault.set(nylas["credentialSecret"], credential, tags=tags, expires_on=None, content_type="text/plain")
    register_nylas(emulators, {"nylas": {**nylas, "credential": credential}})


def target_of(body: dict[str, Any]) -> NylasTarget:
    """The body's Nylas target, or the document's default."""
    return NylasTarget(body["nylas"].get("target", document_default("NylasSpec", "target")))


def document_default(schema_name: str, prop: str) -> Any:
    return document()["components"]["schemas"][schema_name]["properties"][prop]["default"]


def scope_repeated(scopes: list[str]) -> int | None:
    """The index of the first scope that names an earlier one again, in any spelling (any letter case,
    the Graph prefix or not: the `scopes` description), or None."""
    seen: list[str] = []
    for i, name in enumerate(scopes):
        short = name.lower().removeprefix(GRAPH_SCOPE_PREFIX)
        if short in seen:
            return i
        seen.append(short)
    return None


def owned_app(emulators: Any) -> str:
    """An app registration the service's identity owns (adoptable); its appId."""
    world = emulators.world
    app = world.graph.create_app(world.identity.client_id, {"displayName": "made by hand"})
    return str(app.app_id)


# --- branding: what the Logo.base64 description states, and what an app looks like --------------------

# The first bytes of each logo type, and the most a logo may decode to (`Logo.base64`'s description).
LOGO_SIGNATURES = {
    "image/png": bytes.fromhex("89504E470D0A1A0A"),
    "image/jpeg": bytes.fromhex("FFD8FF"),
    "image/bmp": bytes.fromhex("424D"),
}
MAX_LOGO_BYTES = 100 * 1024
INFO_URLS = ("marketingUrl", "privacyStatementUrl", "supportUrl", "termsOfServiceUrl")


def logo_bytes(logo: dict[str, str]) -> bytes:
    return base64.b64decode(logo["base64"], validate=True)


def logo_rule_broken(branding: dict[str, Any]) -> bool:
    """Whether a branding object the schema accepts has a logo the description refuses: over 100 KB
    once decoded, or not starting with its content type's bytes."""
    logo = branding.get("logo")
    if logo is None:
        return False
    try:
        data = logo_bytes(logo)
    except (binascii.Error, ValueError):
        return True  # cannot happen to a body the schema accepts; refused either way
    return len(data) > MAX_LOGO_BYTES or not data.startswith(LOGO_SIGNATURES[logo["contentType"]])


@st.composite
def real_logo(draw: st.DrawFn) -> dict[str, str]:
    """A logo the service takes: a type's first bytes, then anything, now and then exactly 100 KB."""
    content_type = draw(st.sampled_from(sorted(LOGO_SIGNATURES)))
    signature = LOGO_SIGNATURES[content_type]
    rest = draw(st.binary(max_size=200)) if draw(st.integers(0, 9)) else bytes(MAX_LOGO_BYTES - len(signature))
    return {"contentType": content_type, "base64": base64.b64encode(signature + rest).decode()}


real_logos = real_logo()


def app_branding(emulators: Any, object_id: str) -> tuple[dict[str, str], str, str]:
    """An app's links as the emulated Graph holds them ("" when not set), its logo URL, and the
    SHA-256 of the logo this service last uploaded (its tag; "" when none)."""
    data = emulators.world.graph.apps[object_id].data
    info = data.get("info") or {}
    tag = next((t[len(LOGO_TAG_PREFIX) :] for t in data.get("tags") or [] if t.startswith(LOGO_TAG_PREFIX)), "")
    return {k: info.get(k) or "" for k in INFO_URLS}, info.get("logoUrl") or "", tag


def expected_changes(emulators: Any, object_id: str, branding: dict[str, Any]) -> list[str]:
    """What a branding request must write to the app as it is now (the PATCH description): the logo
    when it is not the one last uploaded or the app has none, the links when one differs."""
    links, logo_url, uploaded = app_branding(emulators, object_id)
    changed = []
    if "logo" in branding and (hashlib.sha256(logo_bytes(branding["logo"])).hexdigest() != uploaded or not logo_url):
        changed.append("logo")
    if any(branding[k] != links[k] for k in INFO_URLS if k in branding):
        changed.append("info")
    return changed


def assert_branded(emulators: Any, object_id: str, branding: dict[str, Any]) -> None:
    """The app shows every link the request named, and its logo."""
    links, logo_url, uploaded = app_branding(emulators, object_id)
    assert {k: links[k] for k in INFO_URLS if k in branding} == {k: branding[k] for k in INFO_URLS if k in branding}
    if "logo" in branding:
        data = logo_bytes(branding["logo"])
        held = emulators.world.publisher.logos[object_id]
        assert (held.content_type, held.data) == (branding["logo"]["contentType"], data)
        assert logo_url and uploaded == hashlib.sha256(data).hexdigest()


# --- POST /api/tenants: bodies the schema accepts ---------------------------------------------------


@pytest.fixture
def unpaced(emulators: Any, env: dict[str, str], alerts: Any) -> Iterator[Any]:
    """The service as ``svc`` wires it, with Graph's pace for personal-account apps out of the way
    (tests/test_pacing.py pins it). A provisioning's queued run of such an app takes a pace slot, and
    ``drain`` waits for a slot in real time: a second follow-up (the same POST sent twice) would wait
    about 2 s, and so would the first run after a world reset, which rewinds the clock the slots
    were reserved on."""
    services = local_services(emulators, {**env, "GRAPH_WRITES_PER_MINUTE": "100000"}, alerts)
    use_services(services)
    try:
        yield services
    finally:
        use_services(None)
        services.graph.close()


def test_valid_provisioning_requests_answer_202_then_200_once_settled_without_writing_again(
    api, unpaced, emulators, caplog
):
    svc = unpaced
    harness = Harness(emulators, caplog, "provision_valid")
    outcomes: Counter[str] = Counter()
    # Pinned: a one-day secret is due the moment it exists, the case where the follow-up queued by
    # the repeated POST once rotated it (the draws seldom ask for one day).
    one_day = json.dumps(tenant_body("acme", "v3-credential", secretLifetimeDays=1)).encode()
    pinned = Call("provision_tenant", "POST", "/api/tenants", {}, one_day, "application/json", origin="pinned-one-day")

    @fuzz_settings("provision_valid")
    @example(call=pinned, adopt="none", predecessor="none", brand="none", logo={})
    @given(
        call=strategy(api, "provision_tenant", GenerationMode.POSITIVE),
        adopt=st.sampled_from(["as-generated", "none", "owned", "owned-upper"]),
        predecessor=st.sampled_from(["as-generated", "none", "provisioned", "provisioned"]),
        brand=st.sampled_from(["as-generated", "none", "none", "real-logo"]),
        logo=real_logos,
    )
    def run(call: Call, adopt: str, predecessor: str, brand: str, logo: dict[str, str]) -> None:
        emulators.world.reset()
        forget_queued_work(svc)
        body = call.body()
        if body is NOT_JSON or call.problems():
            # Schemathesis may write text the document cannot mean (lone surrogates): still a 4xx.
            outcomes["refused-invalid"] += 1
            harness.send(call)
            return
        if adopt == "none":
            body.pop("existingAppId", None)
        elif adopt.startswith("owned"):
            app_id = owned_app(emulators)
            body["existingAppId"] = app_id.upper() if adopt == "owned-upper" else app_id
        if brand == "none":
            body.pop("branding", None)
        elif brand == "real-logo":
            body["branding"] = {**body.get("branding", {}), "logo": logo}
        replaces = body.get("replaces", "")
        if predecessor == "none":
            body.pop("replaces", None)
            replaces = ""
        elif predecessor == "provisioned" and replaces and replaces != body["tenant"]:
            provision(emulators, replaces, "v2-integration")  # the v2 tenant it replaces
        call.raw = json.dumps(body).encode()
        prepare(svc, emulators, body)
        event(f"provision_valid target {target_of(body)}{' branded' if 'branding' in body else ''}")

        status, answer, _ = harness.send(call)

        own_secret = secret_name(svc.settings.secret_prefix, body["tenant"])
        repeated = scope_repeated(body.get("scopes", []))
        # The rules the descriptions state, in the parser's order; then what the world says.
        auth = body["auth"]
        if len(call.raw) > MAX_BODY_BYTES:
            expected = (413, "body")  # a logo over about 48 KB fits PATCH's body limit, not this one's
        elif target_of(body).generation == 3 and auth["mode"] == "hosted" and auth["region"] != body["nylas"]["region"]:
            expected = (400, "auth.region")  # v3 hosted auth returns to the Nylas application's region
        elif repeated is not None:
            expected = (400, f"scopes[{repeated}]")
        elif replaces and replaces == body["tenant"]:
            expected = (400, "replaces")
        elif body.get("rotateBeforeDays", 0) >= body.get("secretLifetimeDays", 730):
            expected = (400, "rotateBeforeDays")
        elif logo_rule_broken(body.get("branding", {})):
            expected = (400, "branding.logo.base64")  # not its type's first bytes, or over 100 KB decoded
        elif body["nylas"].get("credentialSecret", "").lower() == own_secret:
            expected = (400, "tenant")  # the credential secret stored above took the tenant's own name
        elif adopt == "as-generated" and "existingAppId" in body:
            expected = (400, "existingAppId")  # a made-up app id: no such app is visible
        elif replaces and predecessor == "as-generated":
            expected = (400, "replaces")  # a made-up tenant: nothing to replace
        else:
            expected = (202, "")
        outcomes[f"{status}"] += 1
        outcomes[f"{status} {expected[1] or 'accepted'} {target_of(body)}{' replacing' if replaces else ''}"] += 1
        assert (status, answer["error"]["field"] if status >= 400 else "") == expected, call.describe()
        if status != 202:
            return
        target = target_of(body)
        generation = target.generation
        path = f"/api/tenants/{body['tenant']}"
        assert (answer["tenant"], answer["status"], answer["rotationState"]) == (body["tenant"], path, "pending")
        nylas = {k: body["nylas"][k] for k in ("region", "appId")} | {"target": target.value}
        assert {k: answer["nylas"][k] for k in ("target", "region", "appId")} == nylas
        assert "credentialId" not in answer["nylas"] and "hostedAuthUrl" not in answer  # made by the queued run
        assert answer["audience"] == body.get("audience", rq.DEFAULT_AUDIENCES[generation])
        hosted = rq.HOSTED_REDIRECTS[generation].get(auth.get("region", ""))
        assert answer["redirectUri"] == (hosted if auth["mode"] == "hosted" else auth["redirectUri"])
        assert answer.get("replaces", "") == replaces
        if "branding" in body:
            assert_branded(emulators, answer["appObjectId"], body["branding"])

        # Sent again before the queue has run: the same 202, and nothing written.
        again, repeated_answer, calls = harness.send(call)
        assert (again, repeated_answer["keyId"]) == (202, answer["keyId"]), call.describe()
        assert not writes(calls), f"sending the same request again wrote {writes(calls)}"

        drain_queue(svc)  # the queued run proves the secret, pushes it to Nylas and finishes
        path_of_status = operation("get_tenant")[0]
        got, settled, _ = harness.send(Call("get_tenant", "GET", path_of_status, {"tenant": body["tenant"]}))
        assert got == 200, call.describe()
        manual = target.value == "manual"
        assert settled["rotationState"] == ("awaiting-confirmation" if manual else "current"), call.describe()
        # Even a one-day secret, due at once: the second follow-up the repeated POST queued finds the
        # tenant settled and only finishes (it once rotated it).
        assert settled["keyId"] == answer["keyId"], call.describe()
        assert ("credentialId" in settled["nylas"]) == ("hostedAuthUrl" in settled) == (target.value == "v3-credential")

        # Settled: the same request answers 200 with the tenant, and writes nothing.
        again, repeated_answer, calls = harness.send(call)
        assert (again, repeated_answer["keyId"]) == (200, settled["keyId"]), call.describe()
        assert "status" not in repeated_answer
        assert not writes(calls), f"sending the same request to a settled tenant wrote {writes(calls)}"

    run()
    assert RAN["provision_valid"] >= BUDGET["provision_valid"]
    assert outcomes["202"] >= BUDGET["provision_valid"] // 4, outcomes


# --- POST /api/tenants: bodies that break the schema ------------------------------------------------


SECRETS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=12, max_size=40).map(
    lambda t: "nyk_" + t
)


@st.composite
def misplaced_credentials(draw: st.DrawFn, positive: st.SearchStrategy[Call]) -> Call:
    """A valid body with a secret-looking Nylas credential where it must not be, or not as it must be:
    the refusal must not quote it."""
    call = draw(positive)
    body = call.body()
    assume(isinstance(body, dict))
    secret = draw(SECRETS)
    nylas = body["nylas"]
    how = draw(
        st.sampled_from(
            ["space", "too-long", "control", "non-ascii", "manual", "both", "top-level", "auth", "unknown-key", "app"]
        )
    )
    if how in ("space", "too-long", "control", "non-ascii"):
        suffix = {"space": " x", "too-long": "k" * 1024, "control": "\x00", "non-ascii": "é"}[how]
        nylas["credential"] = secret + suffix
        nylas.pop("credentialSecret", None)
        if nylas.get("target") == "manual":
            nylas["target"] = "v3-connector"
    elif how == "manual":
        nylas.update(target="manual", credential=secret)
    elif how == "both":
        nylas.update(credential=secret, credentialSecret="kv-name")
    elif how == "top-level":
        body["credential"] = secret
    elif how == "auth":
        body["auth"]["credential"] = secret
    elif how == "unknown-key":
        nylas["apiKey"] = secret
    else:
        nylas["appId"] = secret + " "
    call.raw = json.dumps(body).encode()
    call.origin = f"misplaced-credential-{how}"
    return call


def test_schema_violating_provisioning_requests_are_refused_without_an_outside_call(api, svc, emulators, caplog):
    harness = Harness(emulators, caplog, "provision_invalid")

    # Negative generation may break only a header or the query and leave the body valid: those are
    # the valid requests of the test above, so keep the ones whose path or body is invalid.
    negative = strategy(api, "provision_tenant", GenerationMode.NEGATIVE).filter(lambda c: bool(c.problems()))
    positive = strategy(api, "provision_tenant", GenerationMode.POSITIVE)

    @fuzz_settings("provision_invalid")
    @given(pick=st.integers(0, 9), generated=negative, misplaced=misplaced_credentials(positive))
    def run(pick: int, generated: Call, misplaced: Call) -> None:
        call = generated if pick < 6 else misplaced
        assume(call.problems())
        harness.send(call)

    run()
    assert RAN["provision_invalid"] >= BUDGET["provision_invalid"]
    assert harness.invalid == RAN["provision_invalid"], harness.statuses


# --- POST /api/tenants: raw bytes and content types -------------------------------------------------

VALID_BODY = json.dumps(tenant_body("acme", "v3-connector")).encode()
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    'Application/JSON;charset="UTF-8"',
    "application/json; charset=utf-16",
    "application/json; charset=iso-8859-1",
    "application/json;charset",
    "application/json; boundary=x",
    "application/problem+json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "text/json",
    "application/jsonx",
    "application/json\x00",
    "*/*",
    "",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid body with its bytes damaged, re-encoded, duplicated or stretched."""
    raw = VALID_BODY
    how = draw(
        st.sampled_from(
            ["truncate", "insert", "delete", "replace", "encoding", "duplicate", "constant", "oversize", "pad"]
        )
    )
    at = draw(st.integers(0, len(raw)))
    if how == "truncate":
        return raw[:at]
    if how == "insert":
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    if how == "delete":
        return raw[:at] + raw[at + draw(st.integers(1, 8)) :]
    if how == "replace":
        return raw[:at] + draw(st.binary(min_size=1, max_size=1)) + raw[at + 1 :]
    if how == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig", "latin-1", "cp1252"]))
        return VALID_BODY.decode().replace("Acme", "Äcmé ✓").encode(codec, errors="replace")
    if how == "duplicate":
        key = draw(st.sampled_from([b'"tenant"', b'"auth"', b'"nylas"', b'"displayName"']))
        return b"{" + key + b': "x", ' + raw[1:]
    if how == "constant":
        constant = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000]))
        return raw[:-1] + b', "secretLifetimeDays": ' + constant + b"}"
    if how == "oversize":
        return raw[:-1] + b" " * (MAX_BODY_BYTES - len(raw) + draw(st.integers(1, 100))) + b"}"
    return raw[:-1] + b" " * draw(st.integers(0, 64)) + b"}"  # pad: still valid, still small


raw_bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated(),
    st.sampled_from([b"", b"{}", b"[]", b"null", b"[" * 5000, b"{" * 5000, b'"\\ud800"', b"\xef\xbb\xbf{}"]),
)


@st.composite
def raw_calls(draw: st.DrawFn) -> Call:
    pick = draw(st.integers(0, 9))
    json_types = st.sampled_from(CONTENT_TYPES[:3])
    any_type = st.sampled_from(CONTENT_TYPES) | st.text(max_size=40) | st.none()
    if pick < 4:  # JSON, so that the body itself is read
        content_type: str | None = draw(json_types)
    elif pick < 7:  # a good body under any content type: only JSON in UTF-8 is read
        content_type = draw(any_type.filter(lambda t: t is None or not json_media_type(t)))
        return Call("provision_tenant", "POST", "/api/tenants", {}, VALID_BODY, content_type, origin="raw-type")
    else:
        content_type = draw(any_type)
    return Call("provision_tenant", "POST", "/api/tenants", {}, draw(raw_bodies), content_type, origin="raw")


def test_raw_bodies_and_content_types_are_refused_with_the_error_body(svc, emulators, caplog):
    harness = Harness(emulators, caplog, "provision_raw")

    def pinned(raw: bytes, content_type: str, why: str) -> Call:
        return Call("provision_tenant", "POST", "/api/tenants", {}, raw, content_type, origin=f"pinned-{why}")

    @fuzz_settings("provision_raw")
    # Pinned, so the coverage check below never rests on a draw: one byte past the limit, a good
    # body under a type that is no JSON, and JSON cut short.
    @example(call=pinned(b" " * (MAX_BODY_BYTES + 1), "application/json", "size"))
    @example(call=pinned(VALID_BODY, "text/plain", "type"))
    @example(call=pinned(VALID_BODY[:-1], "application/json", "cut"))
    @given(call=raw_calls())
    def run(call: Call) -> None:
        emulators.world.reset()
        body = call.body()
        if body is not NOT_JSON and not call.problems():
            prepare(svc, emulators, body)
        harness.send(call)

    run()
    assert RAN["provision_raw"] >= BUDGET["provision_raw"]
    assert {400, 413, 415} <= set(harness.pinned_statuses), harness.pinned_statuses


# --- /api/tenants/{tenant}, .../rotate, .../rotation/confirm ----------------------------------------

EDGE_TENANTS = [
    "",
    "-",
    "a",
    "a" * 40,
    "a" * 41,
    "a" * 5000,
    "ACME",
    "Acme",
    "acme ",
    " acme",
    "a--b",
    "-acme",
    "acme-",
    "acme_eu",
    "acme.eu",
    "acme/rotate",
    "../acme",
    "acme%0A",
    "acme%2Frotate",
    "acme\x00",
    "acme\r",
    "acme\t",
    "ａｃｍｅ",  # fullwidth
    "acme\u200b",  # zero-width space
    "acmé",
    "ΑCME",  # Greek capital alpha
    "١٢٣",  # Arabic-Indic digits: \d would take them, the slug must not
    "İ",
    "\ud800",
    "😀",
    "nylas-entra-acme",
    "acme--nylas",
]
KNOWN_TENANTS = ["acme", "initech", "nobody"]

mostly_invalid_tenants = st.one_of(
    st.sampled_from(EDGE_TENANTS),
    st.text(max_size=60),
    st.text(min_size=41, max_size=2000),
    st.text(alphabet="abcAB-_ ./\n", max_size=12),
)
valid_tenants = st.one_of(
    st.sampled_from(KNOWN_TENANTS),
    st.from_regex(SLUG.pattern.replace("$", r"\Z"), fullmatch=True),
)
junk_bodies = st.one_of(st.just(b""), st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()))


@st.composite
def tenant_calls(draw: st.DrawFn) -> Call:
    operation_id = draw(st.sampled_from(TENANT_OPS))
    path, method, _ = operation(operation_id)
    content_type = draw(st.sampled_from(CONTENT_TYPES) | st.none())
    tenant = draw(mostly_invalid_tenants if draw(st.integers(0, 9)) < 7 else valid_tenants)
    return Call(operation_id, method, path, {"tenant": tenant}, draw(junk_bodies), content_type, origin="hand")


def test_tenant_operations_answer_as_documented_for_any_path(api, svc, emulators, caplog):
    provision(emulators, "acme", "v3-connector")
    provision(emulators, "initech", "manual")
    harness = Harness(emulators, caplog, "tenant_operations")
    generated = [strategy(api, op, mode) for op in TENANT_OPS for mode in GenerationMode]
    # Schemathesis makes fresh slugs: now and then, point it at a tenant that exists.
    known = st.sampled_from(TENANT_OPS).flatmap(
        lambda op: st.sampled_from(KNOWN_TENANTS).map(
            lambda t: Call(op, operation(op)[1], operation(op)[0], {"tenant": t}, origin="known")
        )
    )

    def pinned(op: str, tenant: str) -> dict[str, Any]:
        call = Call(op, operation(op)[1], operation(op)[0], {"tenant": tenant}, origin=f"pinned-{op}-{tenant}")
        return {"pick": 0, "generated_call": call, "hand": call, "known_call": call}

    @fuzz_settings("tenant_operations")
    # Pinned, so the coverage check below never rests on a draw: a tenant's status, a queued
    # rotation, a confirmation nothing awaits, a slug that breaks the rules, and no such tenant.
    @example(**pinned("get_tenant", "acme"))
    @example(**pinned("rotate_tenant", "acme"))
    @example(**pinned("confirm_rotation", "acme"))
    @example(**pinned("get_tenant", "ACME"))
    @example(**pinned("rotate_tenant", "nobody"))
    @given(pick=st.integers(0, 9), generated_call=st.one_of(*generated), hand=tenant_calls(), known_call=known)
    def run(pick: int, generated_call: Call, hand: Call, known_call: Call) -> None:
        call = hand if pick < 5 else generated_call if pick < 8 else known_call
        status, body, _ = harness.send(call)
        if not call.problems() and call.route_params["tenant"] == "nobody":
            assert (status, body["error"]["code"]) == (404, "tenant_not_found")
        if call.operation_id == "get_tenant" and call.route_params["tenant"] in ("acme", "initech"):
            assert status == 200

    run()
    assert RAN["tenant_operations"] >= BUDGET["tenant_operations"]
    assert {200, 202, 400, 404, 409} <= set(harness.pinned_statuses), harness.pinned_statuses


# --- DELETE /api/tenants/{tenant}?confirm=…&deleteApp=… ---------------------------------------------

ABSENT = object()
DELETE_APP_VALUES: list[Any] = [
    ABSENT,
    "true",
    "false",
    "True",
    "FALSE",
    "tRuE",
    "",
    "1",
    "0",
    "yes",
    "no",
    " true",
    "true ",
    "true\n",
    "ｔｒｕｅ",  # fullwidth
    "trüe",
    "truefalse",
    "null",
]
CONFIRMS = ["same", "absent", "empty", "upper", "padded", "newline", "prefix", "other-known", "fullwidth"]
LIVE = ("acme", "initech")  # provisioned for the retirement test; "nobody" never is


def confirm_for(tenant: str, how: str) -> Any:
    return {
        "same": tenant,
        "absent": ABSENT,
        "empty": "",
        "upper": tenant.upper(),
        "padded": f" {tenant}",
        "newline": f"{tenant}\n",
        "prefix": tenant[:-1],
        "other-known": "initech" if tenant == "acme" else "acme",
        "fullwidth": "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in tenant),
    }[how]


def retire_call(tenant: str, confirm: Any, delete_app: Any, origin: str, **extra: Any) -> Call:
    path, method, _ = operation(RETIRE)
    params = {}
    if confirm is not ABSENT:
        params["confirm"] = confirm
    if delete_app is not ABSENT:
        params["deleteApp"] = delete_app
    return Call(RETIRE, method, path, {"tenant": tenant}, params=params, origin=origin, **extra)


@st.composite
def hand_retire_calls(draw: st.DrawFn) -> Call:
    """A tenant path that is mostly broken or unknown, a confirm that is mostly not the tenant, a
    deleteApp that is often not a boolean, and any body (DELETE reads none)."""
    tenant = draw(mostly_invalid_tenants if draw(st.integers(0, 9)) < 5 else valid_tenants)
    how = draw(st.sampled_from(CONFIRMS))
    confirm = draw(st.text(max_size=12)) if how == "other-known" and draw(st.booleans()) else confirm_for(tenant, how)
    delete_app = draw(st.sampled_from(DELETE_APP_VALUES) | st.text(max_size=6))
    raw, content_type = draw(junk_bodies), draw(st.sampled_from(CONTENT_TYPES) | st.none())
    return retire_call(tenant, confirm, delete_app, f"hand-confirm-{how}", raw=raw, content_type=content_type)


@st.composite
def aligned(draw: st.DrawFn, generated: st.SearchStrategy[Call]) -> Call:
    """A schemathesis request whose confirm is, more often than chance, the path's tenant."""
    call = draw(generated)
    if draw(st.booleans()) and isinstance(call.route_params.get("tenant"), str):
        call.params["confirm"] = call.route_params["tenant"]
        call.origin += "-aligned"
    return call


def confirmation_refused(call: Call) -> bool:
    """The rule the `confirm` parameter's description states: it repeats the path's tenant."""
    return call.params.get("confirm") != call.route_params.get("tenant")


def test_retire_refuses_bad_paths_and_queries_without_an_outside_call_and_retires_real_tenants(
    api, unpaced, emulators, caplog
):
    svc = unpaced
    apps: dict[str, str] = {}  # tenant -> its app's object id

    def live_tenants() -> None:
        emulators.world.reset()
        forget_queued_work(svc)
        apps["acme"] = provision(emulators, "acme", "v3-credential")["appObjectId"]
        apps["initech"] = provision(emulators, "initech", "manual")["appObjectId"]
        emulators.world.reset_calls()

    live_tenants()
    harness = Harness(emulators, caplog, "retire")
    generated = st.one_of(*(aligned(strategy(api, RETIRE, mode)) for mode in GenerationMode))
    known = st.builds(
        lambda tenant, how, delete_app: retire_call(tenant, confirm_for(tenant, how), delete_app, f"known-{how}"),
        st.sampled_from([*LIVE, "nobody"]),
        st.sampled_from(["same", "same", *CONFIRMS]),
        st.sampled_from([ABSENT, "true", "false", "TRUE", "maybe"]),
    )

    def pinned(tenant: str, confirm: Any, delete_app: Any, why: str) -> dict[str, Any]:
        call = retire_call(tenant, confirm, delete_app, f"pinned-{why}")
        return {"pick": 0, "generated_call": call, "hand": call, "known_call": call}

    @fuzz_settings("retire")
    # Pinned, so the coverage check below never rests on a draw: each refusal, no such tenant, and
    # a real retirement with and without the app.
    @example(**pinned("ACME", "ACME", ABSENT, "tenant"))
    @example(**pinned("acme", "initech", ABSENT, "confirm"))
    @example(**pinned("acme", "acme", "maybe", "deleteApp"))
    @example(**pinned("nobody", "nobody", ABSENT, "not-found"))
    @example(**pinned("acme", "acme", "true", "retired-app-deleted"))
    @example(**pinned("initech", "initech", ABSENT, "retired"))
    @given(pick=st.integers(0, 9), generated_call=generated, hand=hand_retire_calls(), known_call=known)
    def run(pick: int, generated_call: Call, hand: Call, known_call: Call) -> None:
        call = hand if pick < 5 else generated_call if pick < 8 else known_call
        invalid = call.invalid_fields()
        refused = confirmation_refused(call)
        tenant = call.route_params.get("tenant")
        status, body, calls = harness.send(call)
        if invalid or refused:
            harness.outcome(call, f"refused-{body['error']['field']}")
            expected = invalid | ({"confirm"} if refused else set())
            assert status == 400, call.describe()
            assert body["error"]["field"] in expected, f"{body['error']} not one of {expected}: {call.describe()}"
            assert not outside(calls), f"a refused retirement called outside {outside(calls)}: {call.describe()}"
            return
        if tenant not in LIVE:
            harness.outcome(call, "not-found")
            assert (status, body["error"]["code"], body["error"]["field"]) == (404, "tenant_not_found", "tenant")
            assert not writes(calls), call.describe()
            return
        # A real retirement: everything of ours goes, then a second one does nothing.
        harness.outcome(call, "retired")
        delete_app = call.params.get("deleteApp", "false").lower() == "true"
        assert status == 200, call.describe()
        assert (body["tenant"], body["retired"], body["alreadyRetired"]) == (tenant, True, False)
        assert body["appDeleted"] == delete_app
        assert body["revokedKeyIds"], call.describe()
        app = emulators.world.graph.apps.get(apps[tenant])
        assert (app is None) == delete_app
        if app is not None:
            left = {c.key_id for c in app.password_credentials} & set(body["revokedKeyIds"])
            assert not left, f"revoked yet still on the app: {left}"
        assert body["nylasCredentialDeleted"] == (tenant == "acme")  # acme is v3-credential
        assert secret_name(svc.settings.secret_prefix, tenant) in body["keyVaultSecretsDeleted"]
        gone = Call("get_tenant", "GET", operation("get_tenant")[0], {"tenant": tenant}, origin="after-retire")
        status, _, _ = Harness(emulators, caplog, "retire").send(gone)
        assert status == 404
        status, again, calls = harness.send(call)
        assert (status, again["alreadyRetired"]) == (200, True), call.describe()
        assert not writes(calls), f"retiring again wrote {writes(calls)}"
        live_tenants()

    run()
    assert RAN["retire"] >= BUDGET["retire"]
    refusals = {"refused-tenant", "refused-confirm", "refused-deleteApp"}
    assert refusals | {"not-found", "retired"} <= set(harness.pinned_outcomes), harness.pinned_outcomes
    assert {200, 400, 404} <= set(harness.pinned_statuses), harness.pinned_statuses


# --- PATCH /api/tenants/{tenant}: branding ----------------------------------------------------------

LINKS = st.sampled_from(
    [
        "https://acme.example/privacy",
        "https://acme.example/terms",
        "https://www.acme.example:8443/legal/terms?lang=en#top",
        "https://initech.example",
    ]
) | st.from_regex(rq.INFO_URL_PATTERN.replace("$", r"\Z"), fullmatch=True).filter(lambda u: len(u) <= 2048)
valid_brandings = st.fixed_dictionaries({}, optional={**{k: LINKS for k in INFO_URLS}, "logo": real_logos}).filter(bool)


def update_call(tenant: str, raw: bytes, content_type: str | None, origin: str) -> Call:
    path, method, _ = operation(UPDATE)
    return Call(UPDATE, method, path, {"tenant": tenant}, raw, content_type, origin=origin)


@st.composite
def known_updates(draw: st.DrawFn) -> Call:
    """A valid branding update of a live tenant (or of one that does not exist), as a client sends it."""
    tenant = draw(st.sampled_from([*LIVE, *LIVE, "nobody"]))
    body = {"branding": draw(valid_brandings)}
    content_type = draw(st.sampled_from(CONTENT_TYPES[:3]))
    return update_call(tenant, json.dumps(body).encode(), content_type, "known")


@st.composite
def hand_updates(draw: st.DrawFn) -> Call:
    """Broken paths, junk bodies and content types, and valid bodies stretched to around the body limit."""
    tenant = draw(mostly_invalid_tenants if draw(st.integers(0, 9)) < 4 else valid_tenants | st.sampled_from(LIVE))
    how = draw(st.integers(0, 9))
    if how < 4:
        return update_call(tenant, draw(junk_bodies), draw(st.sampled_from(CONTENT_TYPES) | st.none()), "hand-junk")
    raw = json.dumps({"branding": draw(valid_brandings)}).encode()
    if how < 6:  # past the limit of POST /api/tenants, up to a few bytes past its own
        limit = body_limit(UPDATE)
        size = draw(st.sampled_from([MAX_BODY_BYTES + 1, limit, limit + 1]) | st.integers(limit - 4, limit + 4))
        raw = raw[:-1] + b" " * max(0, size - len(raw)) + b"}"
        return update_call(tenant, raw, "application/json", f"hand-size-{len(raw)}")
    if how < 8:  # a valid body under any content type
        return update_call(tenant, raw, draw(st.sampled_from(CONTENT_TYPES) | st.text(max_size=20)), "hand-type")
    # A field the body must not have, or a branding object emptied.
    body: dict[str, Any] = {"branding": {}} if how == 8 else {"branding": {"supportUrl": "https://a.b"}, "logo": {}}
    return update_call(tenant, json.dumps(body).encode(), "application/json", "hand-shape")


def test_branding_updates_answer_as_documented_and_the_same_update_again_writes_nothing(api, svc, emulators, caplog):
    apps = {
        "acme": provision(emulators, "acme", "v3-credential", audience="multi-org")["appObjectId"],
        "initech": provision(emulators, "initech", "manual")["appObjectId"],
    }
    harness = Harness(emulators, caplog, "update_tenant")
    generated = st.one_of(*(strategy(api, UPDATE, mode) for mode in GenerationMode))
    limit = body_limit(UPDATE)

    def pinned(tenant: str, body: Any, why: str, content_type: str = "application/json") -> dict[str, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        call = update_call(tenant, raw, content_type, f"pinned-{why}")
        return {"pick": 0, "generated_call": call, "hand": call, "known_call": call}

    padded = b'{"branding": {"supportUrl": "https://a.b"}' + b" " * limit + b"}"
    privacy = {"branding": {"privacyStatementUrl": "https://initech.example/privacy"}}
    not_a_png = {"branding": {"logo": {"contentType": "image/png", "base64": base64.b64encode(b"GIF89a").decode()}}}

    @fuzz_settings("update_tenant")
    # Pinned, so the coverage checks below never rest on a draw (a full run once drew no 413): each
    # refusal in the parser's order, no such tenant, a change, and the same change again.
    @example(**pinned("ACME", privacy, "tenant"))
    @example(**pinned("acme", padded[:limit] + b"}", "size"))
    @example(**pinned("acme", b'{"branding": {}}', "type", "text/plain"))
    @example(**pinned("acme", b'{"branding": ', "body"))
    @example(**pinned("acme", not_a_png, "logo"))
    @example(**pinned("nobody", privacy, "not-found"))
    @example(**pinned("initech", privacy, "branded"))
    @example(**pinned("initech", privacy, "unchanged"))
    @given(pick=st.integers(0, 9), generated_call=generated, hand=hand_updates(), known_call=known_updates())
    def run(pick: int, generated_call: Call, hand: Call, known_call: Call) -> None:
        call = hand if pick < 3 else generated_call if pick < 6 else known_call
        invalid = call.invalid_fields()
        tenant = call.route_params.get("tenant", "")
        body = call.body()
        branding = body.get("branding", {}) if isinstance(body, dict) else {}
        live = not invalid and tenant in apps and not logo_rule_broken(branding)
        expected = expected_changes(emulators, apps[tenant], branding) if live else []

        status, answer, calls = harness.send(call)

        if invalid:  # the path first, then the body: its size, its type, its JSON, its fields
            harness.outcome(call, f"refused-{answer['error']['field']}")
            if "tenant" in invalid:
                assert (status, answer["error"]["field"]) == (400, "tenant"), call.describe()
            elif len(call.raw) > limit:
                assert (status, answer["error"]["code"]) == (413, "payload_too_large"), call.describe()
            elif call.content_type is None or not json_media_type(call.content_type):
                assert (status, answer["error"]["code"]) == (415, "unsupported_media_type"), call.describe()
            else:
                assert status == 400 and answer["error"]["field"] != "tenant", call.describe()
            return
        if logo_rule_broken(branding):
            harness.outcome(call, "refused-logo")
            assert (status, answer["error"]["field"]) == (400, "branding.logo.base64"), call.describe()
            assert not outside(calls), f"a refused logo called outside {outside(calls)}: {call.describe()}"
            return
        if tenant not in apps:
            harness.outcome(call, "not-found")
            assert (status, answer["error"]["code"], answer["error"]["field"]) == (404, "tenant_not_found", "tenant")
            assert not writes(calls), call.describe()
            return
        harness.outcome(call, "branded" if expected else "unchanged")
        assert status == 200, call.describe()
        assert (answer["tenant"], answer["appObjectId"], answer["changed"]) == (tenant, apps[tenant], expected)
        assert bool(writes(calls)) == bool(expected), f"changed {expected} yet wrote {writes(calls)}"
        assert_branded(emulators, apps[tenant], branding)
        shown = answer["branding"]
        assert {k: shown[k] for k in INFO_URLS if k in branding} == {k: branding[k] for k in INFO_URLS if k in branding}
        assert shown["logoUrl"] == (app_branding(emulators, apps[tenant])[1] or None)
        # Idempotent: the same body again writes nothing and says so.
        status, again, calls = harness.send(call)
        assert (status, again["changed"], again["branding"]) == (200, [], shown), call.describe()
        assert not writes(calls), f"the same branding again wrote {writes(calls)}"

    run()
    assert RAN["update_tenant"] >= BUDGET["update_tenant"]
    required = {"branded", "unchanged", "not-found", "refused-logo", "refused-tenant", "refused-body"}
    assert required <= set(harness.pinned_outcomes), harness.pinned_outcomes
    assert {200, 400, 404, 413, 415} <= set(harness.pinned_statuses), harness.pinned_statuses


# --- GET /api/tenants ------------------------------------------------------------------------------


def test_list_answers_the_documented_list_whatever_the_query(api, svc, emulators, caplog):
    provision(emulators, "acme", "v3-connector")
    provision(emulators, "initech", "manual")
    harness = Harness(emulators, caplog, "list_tenants")

    @fuzz_settings("list_tenants")
    @given(call=st.one_of(*(strategy(api, "list_tenants", mode) for mode in GenerationMode)))
    def run(call: Call) -> None:
        status, body, calls = harness.send(call)
        assert status == 200, call.describe()
        assert sorted(t["tenant"] for t in body["tenants"]) == ["acme", "initech"]
        assert not writes(calls)

    run()
    assert RAN["list_tenants"] >= BUDGET["list_tenants"]


# --- the suite itself --------------------------------------------------------------------------------


def test_every_documented_operation_has_a_handler_and_a_generator():
    assert {op["operationId"] for _, _, op in operations()} == set(HANDLERS)
    assert set(TENANT_OPS) | {"provision_tenant", "list_tenants", RETIRE, UPDATE} == set(HANDLERS)


def test_the_oracle_reads_each_operations_body_limit_from_its_413_answer():
    assert max_body_bytes("provision_tenant") == MAX_BODY_BYTES == rq.MAX_BODY_BYTES
    assert max_body_bytes(UPDATE) == rq.MAX_BRANDING_BODY_BYTES
    assert max_body_bytes("get_tenant") is None  # reads no body
    body = json.dumps({"branding": {"supportUrl": "https://a.b"}}).encode()
    padded = body[:-1] + b" " * (rq.MAX_BODY_BYTES + 10 - len(body)) + b"}"
    assert update_call("acme", padded, "application/json", "oracle").problems() == []
    assert update_call("acme", padded + b" " * rq.MAX_BRANDING_BODY_BYTES, "application/json", "oracle").problems()


def test_the_oracle_knows_the_logo_rules_the_description_states():
    png = {"contentType": "image/png", "base64": base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()}
    assert not logo_rule_broken({"logo": png})
    assert logo_rule_broken({"logo": png | {"contentType": "image/jpeg"}})
    big = b"BM" + bytes(MAX_LOGO_BYTES - 1)
    assert logo_rule_broken({"logo": {"contentType": "image/bmp", "base64": base64.b64encode(big).decode()}})
    assert not logo_rule_broken({"logo": {"contentType": "image/bmp", "base64": base64.b64encode(big[:-1]).decode()}})
    described = " ".join(document()["components"]["schemas"]["Logo"]["properties"]["base64"]["description"].split())
    assert f"at most 100 KB ({MAX_LOGO_BYTES} bytes)" in described
    for content_type, signature in LOGO_SIGNATURES.items():
        assert f"{content_type.split('/')[1].upper()} `{signature.hex(' ').upper()}`" in described


def test_the_oracle_reads_query_parameters_as_text_and_knows_which_are_required():
    def fields(**params: str) -> set[str]:
        return retire_call(
            "acme", params.pop("confirm", ABSENT), params.pop("deleteApp", ABSENT), "oracle"
        ).invalid_fields()

    assert fields(confirm="acme") == set()
    assert fields(confirm="acme", deleteApp="TRUE") == set()
    assert fields() == {"confirm"}
    assert fields(confirm="Acme", deleteApp="yes") == {"confirm", "deleteApp"}
    assert fields(confirm="acme", deleteApp="true\n") == {"deleteApp"}


def test_the_budget_is_at_least_1000_requests():
    # Each fuzz test asserts it ran its whole share; the shares add up to this.
    assert sum(BUDGET.values()) >= 1000


def test_the_oracle_reads_patterns_as_ecma_262():
    # Python's re.search lets `$` match before a final newline; ECMA-262 (the document's) does not.
    assert re.search(SLUG.pattern, "acme\n")
    assert schema_errors("TenantSlug", "acme\n")
    assert not schema_errors("TenantSlug", "acme")


# --- bugs found by the fuzzing, fixed, and pinned -------------------------------------------------


# Found by this file: SLUG.match let "acme\n" through (Python's `$` matches before a final newline).
@pytest.mark.parametrize("operation_id", [*TENANT_OPS, RETIRE, UPDATE])
@pytest.mark.parametrize("tenant", ["acme\n", "nobody\n"])
def test_path_tenant_with_a_trailing_newline_is_refused_without_an_outside_call(svc, emulators, operation_id, tenant):
    provision(emulators, "acme", "v3-connector")
    path, method, _ = operation(operation_id)
    params = {"confirm": tenant} if operation_id == RETIRE else {}
    call = Call(operation_id, method, path, {"tenant": tenant}, params=params, origin="known-bug")
    emulators.world.reset_calls()

    response = HANDLERS[operation_id](call.request())

    body = json.loads(response.get_body())
    assert (response.status_code, body["error"]["code"], body["error"]["field"]) == (400, "invalid_request", "tenant")
    assert not outside(dict(emulators.world.calls))


# Found by this file: a display name of Unicode blanks only (U+0085, U+00A0, U+3000: not blank to the
# pattern's ASCII class, blank to str.strip) passed validation, was stripped to "", and Graph refused
# the empty name after the Nylas credential was stored (a 502 with writes done).
@pytest.mark.parametrize("blank", ["\u0085", "\u00a0", "\u3000", "\u00a0\u2003"])
@pytest.mark.parametrize("target", ["v3-credential", "v2-integration"])
def test_display_name_of_unicode_blanks_only_is_refused_before_any_outside_call(svc, emulators, blank, target):
    body = tenant_body("acme", target, displayName=blank)
    register_nylas(emulators, body)
    call = Call("provision_tenant", "POST", "/api/tenants", raw=json.dumps(body).encode(), origin="known-bug")
    call.content_type = "application/json"
    emulators.world.reset_calls()

    response = provision_tenant(call.request())

    answer = json.loads(response.get_body())
    assert (response.status_code, answer["error"]["field"]) == (400, "displayName"), answer
    assert not outside(dict(emulators.world.calls))
