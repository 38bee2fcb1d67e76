"""Static gates on infra/ (no Azure, no Bicep CLI needed).

1. Every .bicep file under infra/ parses with pycep-parser, and a broken snippet does not
   (so the gate can fail).
2. checkov scans infra/ (Bicep framework): it parsed files and resources, had no parsing
   errors, and every failed check is on the commented allow-list below.
3. The app setting names in the Bicep equal core.settings.SETTINGS plus the Functions
   host's own settings (and, until the code lists them, the caller sign-in settings); names
   come from the parsed Bicep tree.
4. Every role assignment is scoped to one resource declared in its file (never a
   resource group or subscription), with a role that is justified for that resource type.
5. No listKeys(), no account keys, no secure values in outputs.

Plus a few property checks on the security-relevant settings (shared key off, RBAC vault,
purge protection, Flex runtime, Event Grid filter / retry / dead letter, Graph app role, the
API registration's app roles). The alert rules and the workbook: test_alerts_bicep.py.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lark.exceptions import LarkError
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from core.settings import SETTINGS  # noqa: E402

# Settings the Functions host reads itself, allowed in addition to core.settings.SETTINGS.
# FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are NOT here: Flex Consumption
# rejects them as app settings (the runtime is in functionAppConfig.runtime).
HOST_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        # The Python worker's OpenTelemetry mode (the app configures the Azure Monitor exporter).
        "PYTHON_ENABLE_OPENTELEMETRY",
    }
)

# Caller sign-in settings, read by the caller-auth code (written beside this change). Allowed in
# addition while core.settings.SETTINGS does not list them; once it does, this set is redundant
# and the usual checks (defaults equal, nothing missing) apply to them like to any other.
CALLER_AUTH_SETTINGS = frozenset({"CALLER_AUTH", "CALLER_AUTH_AUDIENCE", "CALLER_AUTH_TENANT_ID"})

# Settings that must never be set on a Flex Consumption app, or that would mean a key-based
# storage connection.
FORBIDDEN_SETTINGS = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_RUN_FROM_PACKAGE",
        "AzureWebJobsStorage",
        "APPINSIGHTS_INSTRUMENTATIONKEY",
    }
)

# Local-only settings: in SETTINGS (so the name sets match) and set in production, but to
# the empty string — production uses the managed identity and the system CA store.
LOCAL_ONLY_EMPTY_IN_PRODUCTION = frozenset({"AZURE_CLIENT_SECRET", "CA_BUNDLE"})

KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault(SecretUri="

# Every role the templates grant: role definition id -> (role name, resource type it may be
# scoped to, why the service needs it).
JUSTIFIED_ROLES: dict[str, tuple[str, str, str]] = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": (
        "Storage Blob Data Owner",
        "Microsoft.Storage/storageAccounts",
        "identity-based AzureWebJobsStorage (host locks, keys, timer status), the Flex "
        "deployment package, and the per-tenant lease blobs",
    ),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": (
        "Storage Queue Data Contributor",
        "Microsoft.Storage/storageAccounts",
        "queue trigger on rotation-requests (+ poison queue) and enqueueing rotation requests",
    ),
    "3913510d-42f4-4e42-8a64-420c390055eb": (
        "Monitoring Metrics Publisher",
        "Microsoft.Insights/components",
        "Entra-authenticated telemetry: Application Insights has local auth disabled",
    ),
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": (
        "Key Vault Secrets Officer",
        "Microsoft.KeyVault/vaults",
        "create/read/update/delete the Nylas client secrets; resolve the alert webhook reference",
    ),
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": (
        "Storage Blob Data Contributor",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Event Grid system topic identity writes dead-lettered events to one container",
    ),
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": (
        "Monitoring Reader",
        "Microsoft.Insights/components",
        "the alert rules' own identity runs their log queries on the component (not the last editor's rights)",
    ),
}

# checkov findings accepted on purpose, keyed by (check id, file relative to infra/, resource).
# Keyed by resource so the same check on a NEW resource still fails the test.
_KV, _VAULT, _SECRET = (
    "modules/keyvault.bicep",
    "Microsoft.KeyVault/vaults.vault",
    "Microsoft.KeyVault/vaults/secrets.alertWebhookSecret",
)
_ST, _ACCOUNT = "modules/storage.bicep", "Microsoft.Storage/storageAccounts.storage"
_FA, _PLAN, _SITE = "modules/function-app.bicep", "Microsoft.Web/serverfarms.plan", "Microsoft.Web/sites.site"
_APPSETTINGS = "Microsoft.Web/sites/config.site__appSettings"
_WEB_CONFIG_ON_APPSETTINGS = "false positive: a 'web' config check applied to the appsettings name/value map"
CHECKOV_ALLOWED_FAILURES: dict[tuple[str, str, str], str] = {
    # --- network isolation: this deployment has no VNet -------------------------------------
    # The Flex app has no VNet integration (and no fixed outbound IPs), so Key Vault and the
    # storage account must accept public traffic; access is Entra ID + RBAC only (shared key
    # disabled, RBAC vault). Private endpoints need VNet integration: a later, separate change.
    ("CKV_AZURE_109", _KV, _VAULT): "no VNet: a vault firewall would block the Flex app; RBAC-only access",
    ("CKV_AZURE_189", _KV, _VAULT): "no VNet: public endpoint needed by the Flex app; RBAC-only access",
    ("CKV_AZURE_35", _ST, _ACCOUNT): "no VNet: host storage must be reachable by the Flex app; no shared key",
    ("CKV_AZURE_59", _ST, _ACCOUNT): "no VNet: public endpoint needed (anonymous blob access is off); no shared key",
    # HTTP triggers (auth level FUNCTION: a key is required) and Event Grid delivery must
    # reach the app from the internet.
    ("CKV_AZURE_222", _FA, _SITE): "public ingress needed for HTTP triggers (function keys) and Event Grid",
    # --- availability vs cost: everything in storage is reconstructible ----------------------
    # Leases are short-lived, the queue is refilled by the nightly scan, the package is
    # redeployable, dead letters are diagnostics, and Key Vault is the source of truth.
    ("CKV_AZURE_206", _ST, _ACCOUNT): "LRS on purpose: storage content is reconstructible; Key Vault is the truth",
    # A nightly batch with retries, not a latency-critical API: scale-to-zero Flex, no zone
    # redundancy, no always-ready instances.
    ("CKV_AZURE_225", _FA, _PLAN): "batch workload with retries; zone redundancy needs always-ready instances",
    ("CKV_AZURE_212", _FA, _SITE): "Flex Consumption scales from zero; no minimum instance count",
    ("CKV_AZURE_213", _FA, _SITE): "App Service health check is not a Flex Consumption feature",
    # Callers authenticate with function keys (auth level FUNCTION), not client certificates.
    ("CKV_AZURE_17", _FA, _SITE): "auth is function keys; there are no mTLS clients",
    # --- checkov applies App Service 'web' config checks to Microsoft.Web/sites/config -------
    # Ours is named 'appsettings': a name/value map where the properties these checks look
    # for (logging, auth, public access, .NET version, Azure Files) cannot appear.
    ("CKV_AZURE_13", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    ("CKV_AZURE_63", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    ("CKV_AZURE_65", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    ("CKV_AZURE_66", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    ("CKV_AZURE_80", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    ("CKV_AZURE_88", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    ("CKV_AZURE_222", _FA, _APPSETTINGS): _WEB_CONFIG_ON_APPSETTINGS,
    # --- the alert webhook secret ------------------------------------------------------------
    # A webhook URL is not a rotating credential: an expiry date would only start Key Vault
    # expiry events for a secret nobody rotates.
    ("CKV_AZURE_41", _KV, _SECRET): "a webhook URL is not a rotating credential; no expiry on purpose",
    # contentType IS set ('text/uri-list'); checkov does not look inside a conditional
    # resource (`= if (...) {`), which this one is (written only when a URL is given).
    ("CKV_AZURE_114", _KV, _SECRET): "false positive: contentType is set; checkov skips conditional resources",
}

EXPECTED_BICEP_FILES = {
    "main.bicep",
    "eventgrid.bicep",
    "modules/identity.bicep",
    "modules/storage.bicep",
    "modules/monitoring.bicep",
    "modules/keyvault.bicep",
    "modules/function-app.bicep",
    "modules/graph-permission.bicep",
    "modules/alerts.bicep",
    "modules/workbook.bicep",
    "modules/api-registration.bicep",
}

Tree = dict[str, Any]


@functools.cache
def _parser() -> Any:
    return BicepParser()


@functools.cache
def _parse(path: Path) -> Tree:
    tree = _parser().parse(file_path=path)
    assert isinstance(tree, dict), f"{path}: pycep returned {type(tree).__name__}"
    return tree


def _rel(path: Path) -> str:
    return path.relative_to(INFRA).as_posix()


def _trees() -> dict[str, Tree]:
    return {_rel(path): _parse(path) for path in BICEP_FILES}


def _body(resource: Tree) -> Tree:
    """The resource's own object, unwrapping `= if (cond) {...}`."""
    config = resource["config"]
    assert isinstance(config, dict)
    if "condition" in config and isinstance(config.get("config"), dict):
        inner = config["config"]
        assert isinstance(inner, dict)
        return inner
    return config


def _resources(of_type: str) -> Iterator[tuple[str, str, Tree]]:
    for rel, tree in _trees().items():
        for symbol, resource in tree.get("resources", {}).items():
            if resource["type"] == of_type:
                yield rel, symbol, resource


def _resolve(tree: Tree, value: Any) -> Any:
    """Resolve a bare identifier / `var.key` to a param default or var value; else as is.

    pycep gives literals and identifiers both as str, so a str that names a param or var of
    the file is taken as a reference.
    """
    if isinstance(value, str):
        params = tree.get("parameters", {})
        variables = tree.get("variables", {})
        if value in params:
            return params[value].get("default")
        if value in variables:
            return variables[value]["value"]
        return value
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        base = _resolve(tree, operands["operand_1"])
        key = operands["operand_2"]
        if isinstance(base, dict) and isinstance(key, str) and key in base:
            return base[key]
    return value


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


def _app_settings() -> tuple[Tree, Tree]:
    """(file tree, properties) of the one Microsoft.Web/sites/config 'appsettings' resource."""
    found = [
        (rel, _body(resource))
        for rel, _symbol, resource in _resources("Microsoft.Web/sites/config")
        if _body(resource).get("name") == "appsettings"
    ]
    assert len(found) == 1, f"expected exactly one appsettings config resource, found {[rel for rel, _ in found]}"
    rel, body = found[0]
    properties = body.get("properties")
    assert isinstance(properties, dict), (
        f"{rel}: appsettings properties must be a literal object (no union()), so names can be read"
    )
    return _trees()[rel], properties


# --- 1. syntax gate -------------------------------------------------------------------------


def test_expected_bicep_files_exist() -> None:
    assert {_rel(path) for path in BICEP_FILES} >= EXPECTED_BICEP_FILES


@pytest.mark.parametrize("path", BICEP_FILES, ids=_rel)
def test_bicep_file_parses(path: Path) -> None:
    tree = _parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{_rel(path)} declares no resource or module"


VALID_SNIPPET = """\
param name string
resource st 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: name
}
"""

BROKEN_SNIPPETS = {
    "unclosed-object": "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n",
    "missing-value": "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name:\n}\n",
    "param-without-type": "param name = 'x'\n",
}


def test_parser_accepts_a_valid_snippet(tmp_path: Path) -> None:
    path = tmp_path / "valid.bicep"
    path.write_text(VALID_SNIPPET)
    assert "st" in _parser().parse(file_path=path)["resources"]


@pytest.mark.parametrize("snippet", BROKEN_SNIPPETS.values(), ids=BROKEN_SNIPPETS.keys())
def test_parser_rejects_a_broken_snippet(tmp_path: Path, snippet: str) -> None:
    path = tmp_path / "broken.bicep"
    path.write_text(snippet)
    with pytest.raises((LarkError, ValueError)):
        _parser().parse(file_path=path)


def test_bicepconfig_enables_the_graph_extension() -> None:
    config = json.loads((INFRA / "bicepconfig.json").read_text())
    assert config["extensions"]["microsoftGraphV1"].startswith(
        "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:"
    )
    graph = _trees()["modules/graph-permission.bicep"]
    assert "microsoftGraphV1" in graph.get("extensions", {})


# --- 2. checkov -----------------------------------------------------------------------------


def _checkov_executable() -> str | None:
    """CHECKOV_BIN, else checkov next to this interpreter, else on PATH."""
    explicit = os.environ.get("CHECKOV_BIN")
    if explicit:
        return explicit
    # .ci/run and `make setup` install checkov in a venv of its own: its pins
    # (pycep-parser 0.5, packaging<24) cannot live beside pytest 9 and pycep 0.7.
    separate = ROOT / ".venv-checkov" / "bin" / "checkov"
    if separate.exists():
        return str(separate)
    beside = Path(sys.executable).parent / ("checkov.cmd" if os.name == "nt" else "checkov")
    if beside.exists():
        return str(beside)
    return shutil.which("checkov")


@pytest.fixture(scope="module")
def checkov_report() -> Tree:
    executable = _checkov_executable()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("checkov is missing in CI: .ci/run must install it into .venv-checkov")
        pytest.skip("checkov is not installed (set CHECKOV_BIN or install it next to this Python); CI installs it")
    proc = subprocess.run(
        [executable, "-d", str(INFRA), "--framework", "bicep", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    # Exit code 1 only means "some check failed"; the allow-list decides below.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"checkov printed no JSON ({exc}):\n{proc.stdout[:2000]}\n{proc.stderr[-4000:]}") from exc
    if isinstance(report, list):  # one entry per framework
        report = next((entry for entry in report if entry.get("check_type") == "bicep"), None)
    assert isinstance(report, dict) and report.get("check_type") == "bicep", f"no bicep report in: {proc.stdout[:2000]}"
    return report


def _finding_key(check: Tree) -> tuple[str, str, str]:
    return (str(check["check_id"]), str(check["file_path"]).lstrip("/"), str(check["resource"]))


def test_checkov_parsed_the_templates(checkov_report: Tree) -> None:
    summary = checkov_report["summary"]
    results = checkov_report["results"]
    assert summary["parsing_errors"] == 0, f"checkov could not parse: {results.get('parsing_errors')}"
    assert not results.get("parsing_errors")
    assert summary["resource_count"] > 0
    assert summary["passed"] + summary["failed"] > 0
    scanned = {str(c["file_path"]).lstrip("/") for c in results["passed_checks"] + results["failed_checks"]}
    assert len(scanned) > 0
    assert {"modules/storage.bicep", "modules/keyvault.bicep", "modules/function-app.bicep"} <= scanned, scanned


def test_checkov_failures_are_all_allow_listed(checkov_report: Tree) -> None:
    failed = {_finding_key(check): str(check["check_name"]) for check in checkov_report["results"]["failed_checks"]}
    unexpected = {key: name for key, name in failed.items() if key not in CHECKOV_ALLOWED_FAILURES}
    assert not unexpected, (
        "checkov findings not on the allow-list (fix them, or allow-list with a reason):\n"
        + "\n".join(f"  {key}: {name}" for key, name in sorted(unexpected.items()))
    )


def test_checkov_allow_list_has_no_stale_entries(checkov_report: Tree) -> None:
    failed = {_finding_key(check) for check in checkov_report["results"]["failed_checks"]}
    stale = sorted(set(CHECKOV_ALLOWED_FAILURES) - failed)
    assert not stale, f"allow-listed checks now pass (or changed id); remove them from the allow-list: {stale}"


# --- 3. app settings ------------------------------------------------------------------------


def test_app_setting_names_match_core_settings() -> None:
    _tree, properties = _app_settings()
    names = set(properties)
    missing = set(SETTINGS) - names
    extra = names - set(SETTINGS) - HOST_SETTINGS - CALLER_AUTH_SETTINGS
    assert not missing, f"settings the code reads but the Bicep does not set: {sorted(missing)}"
    assert not extra, f"app settings the code does not read (and not host settings): {sorted(extra)}"
    assert names & FORBIDDEN_SETTINGS == set()


def test_local_only_settings_are_empty_in_production() -> None:
    _tree, properties = _app_settings()
    for name in LOCAL_ONLY_EMPTY_IN_PRODUCTION:
        assert properties[name] == "", f"{name} must be '' in production (managed identity / system CA store)"


def test_alert_webhook_url_is_a_key_vault_reference() -> None:
    _tree, properties = _app_settings()
    value = properties["ALERT_WEBHOOK_URL"]
    # `cond ? '' : '@Microsoft.KeyVault(SecretUri=...)'`: empty (alerts only logged) or a reference.
    assert isinstance(value, dict) and value["operator"]["type"] == "conditional", value
    operands = value["operator"]["operands"]
    branches = [operands["true_value"], operands["false_value"]]
    assert all(isinstance(branch, str) for branch in branches), branches
    assert sorted(branches, key=len)[0] == ""
    assert sorted(branches, key=len)[1].startswith(KEY_VAULT_REFERENCE_PREFIX), branches
    main = _trees()["main.bicep"]
    decorators = main["parameters"]["alertWebhookUrl"]["decorators"]
    assert {"type": "secure"} in decorators, "main.bicep alertWebhookUrl must be @secure()"


def test_fixed_setting_values_equal_core_defaults() -> None:
    """A value fixed in the Bicep (literal or param default) is the code's production default."""
    tree, properties = _app_settings()
    for name, (default, _description) in SETTINGS.items():
        value = _resolve(tree, properties[name])
        if default is None or not isinstance(value, str) or name in LOCAL_ONLY_EMPTY_IN_PRODUCTION:
            continue
        if name == "ALERT_WEBHOOK_URL":
            continue  # a Key Vault reference, checked above
        assert value == default, f"{name}: Bicep sets {value!r}, core.settings default is {default!r}"


def test_identity_based_host_storage() -> None:
    _tree, properties = _app_settings()
    assert properties["AzureWebJobsStorage__credential"] == "managedidentity"
    assert properties["STORAGE_CONNECTION"] == "AzureWebJobsStorage"
    assert properties["AzureWebJobsStorage__clientId"] == properties["AZURE_CLIENT_ID"] == "identityClientId"


# --- 4. role assignments ----------------------------------------------------------------------


def test_role_assignments_are_scoped_to_one_resource() -> None:
    seen = []
    for rel, symbol, resource in _resources("Microsoft.Authorization/roleAssignments"):
        tree = _trees()[rel]
        body = _body(resource)
        where = f"{rel}:{symbol}"
        assert tree["globals"]["scope"]["value"] == "resourceGroup", (
            f"{where}: role assignments belong in RG-scope files"
        )
        scope = body.get("scope")
        assert isinstance(scope, str), f"{where}: needs `scope: <resource symbol>`, got {scope!r}"
        target = tree["resources"].get(scope)
        assert target is not None, f"{where}: scope {scope!r} is not a resource declared in {rel}"
        assert target["type"] not in {
            "Microsoft.Resources/resourceGroups",
            "Microsoft.Resources/subscriptions",
        }, f"{where}: scoped to a {target['type']}"

        role_expr = body["properties"]["roleDefinitionId"]
        # subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <guid | var | var.key>)
        role_arg = _resolve(tree, role_expr["function"]["parameters"].get("resource_name_1"))
        known = [role_arg] if isinstance(role_arg, str) and role_arg in JUSTIFIED_ROLES else []
        assert len(known) == 1, f"{where}: role definition {role_expr!r} is not one of JUSTIFIED_ROLES"
        role_name, scope_type, _why = JUSTIFIED_ROLES[known[0]]
        assert target["type"] == scope_type, f"{where}: {role_name} must be scoped to a {scope_type}"
        seen.append(role_name)
    assert sorted(seen) == sorted(name for name, _type, _why in JUSTIFIED_ROLES.values()), seen


# --- 5. no keys, no secrets in outputs ------------------------------------------------------

KEY_PATTERNS = re.compile(
    r"listKeys\(|\.list[A-Z]\w*\(|AccountKey=|SharedAccessKey=|listAccountSas|listServiceSas", re.I
)


def test_no_keys_anywhere_in_infra() -> None:
    files = [p for p in INFRA.rglob("*") if p.is_file() and p.suffix in {".bicep", ".json", ".sh", ".ps1"}]
    assert files
    hits = [f"{_rel(p)}: {m.group(0)}" for p in files for m in KEY_PATTERNS.finditer(p.read_text())]
    assert not hits, hits


def test_outputs_carry_no_secure_values() -> None:
    for rel, tree in _trees().items():
        secure_params = {
            name for name, param in tree.get("parameters", {}).items() if {"type": "secure"} in param["decorators"]
        }
        for name, output in tree.get("outputs", {}).items():
            assert {"type": "secure"} not in output["decorators"], f"{rel}: output {name} is @secure()"
            used = set(_string_leaves(output["value"])) & secure_params
            assert not used, f"{rel}: output {name} uses secure parameter(s) {used}"


def test_parameters_file_holds_no_values() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for name, entry in parameters.items():
        assert re.fullmatch(r"\$\{[A-Z_]+\}", entry["value"]), f"{name}: only azd ${{VAR}} placeholders belong here"


# --- resource properties that carry the security design -------------------------------------


def _only_body(rel: str, of_type: str) -> Tree:
    bodies = [_body(r) for file, _s, r in _resources(of_type) if file == rel and not r["existing"]]
    assert len(bodies) == 1, f"expected one {of_type} in {rel}, found {len(bodies)}"
    return bodies[0]


def test_storage_disallows_shared_keys() -> None:
    properties = _only_body("modules/storage.bicep", "Microsoft.Storage/storageAccounts")["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_key_vault_is_rbac_with_purge_protection() -> None:
    properties = _only_body("modules/keyvault.bicep", "Microsoft.KeyVault/vaults")["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True


def test_application_insights_uses_entra_auth_only() -> None:
    properties = _only_body("modules/monitoring.bicep", "Microsoft.Insights/components")["properties"]
    assert properties["DisableLocalAuth"] is True


def test_flex_consumption_python_311_with_identity_deployment_storage() -> None:
    plan = _only_body("modules/function-app.bicep", "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = _only_body("modules/function-app.bicep", "Microsoft.Web/sites")
    assert site["identity"]["type"] == "UserAssigned"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"


def test_event_grid_subscription() -> None:
    tree = _trees()["eventgrid.bicep"]
    topic = _only_body("eventgrid.bicep", "Microsoft.EventGrid/systemTopics")
    assert topic["properties"]["topicType"] == "Microsoft.KeyVault.vaults"
    sub = _only_body("eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions")["properties"]
    assert sorted(sub["filter"]["includedEventTypes"]) == [
        "Microsoft.KeyVault.SecretExpired",
        "Microsoft.KeyVault.SecretNearExpiry",
    ]
    assert sub["destination"]["endpointType"] == "AzureFunction"
    function = tree["resources"][sub["destination"]["properties"]["resourceId"]["operator"]["operands"]["operand_1"]]
    assert function["type"] == "Microsoft.Web/sites/functions"
    assert _resolve(tree, _body(function)["name"]) == "on_key_vault_event"
    assert set(sub["retryPolicy"]) == {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"}
    dead_letter = sub["deadLetterWithResourceIdentity"]
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    assert dead_letter["identity"]["type"] == "SystemAssigned"
    # Deployed on its own, after the code: main.bicep must not pull it in.
    assert "eventgrid.bicep" not in json.dumps(_trees()["main.bicep"].get("modules", {}))


def test_graph_app_role_assignment() -> None:
    tree = _trees()["modules/graph-permission.bicep"]
    graph_sp = [_body(r) for _f, _s, r in _resources("Microsoft.Graph/servicePrincipals") if r["existing"]]
    assert [_resolve(tree, sp["appId"]) for sp in graph_sp] == ["00000003-0000-0000-c000-000000000000"]
    grant = _only_body("modules/graph-permission.bicep", "Microsoft.Graph/appRoleAssignedTo")
    assert _resolve(tree, grant["appRoleId"]) == "18a4783c-866b-4cc7-a460-3d5e5662c884"  # Application.ReadWrite.OwnedBy


def test_azure_yaml_and_hooks() -> None:
    text = (ROOT / "azure.yaml").read_text()
    for needle in ("  api:", "project: .", "language: python", "host: function", "postdeploy:"):
        assert needle in text, needle
    for hook in ("postdeploy.sh", "postdeploy.ps1"):
        script = INFRA / "hooks" / hook
        assert f"infra/hooks/{hook}" in text
        assert "eventgrid.bicep" in script.read_text()
        assert "az deployment group create" in script.read_text()
    assert os.access(INFRA / "hooks" / "postdeploy.sh", os.X_OK), "azd runs posix hooks directly: chmod +x"


# --- caller sign-in and telemetry settings ----------------------------------------------------

API_ROLES = {"Tenants.Read", "Tenants.Provision", "Rotations.Operate"}


def test_api_registration_declares_the_three_app_roles() -> None:
    rel = "modules/api-registration.bicep"
    tree = _trees()[rel]
    assert "microsoftGraphV1" in tree.get("extensions", {})
    app = _only_body(rel, "Microsoft.Graph/applications")
    roles = _resolve(tree, app["appRoles"])
    assert isinstance(roles, list)
    assert {role["value"] for role in roles} == API_ROLES and len(roles) == len(API_ROLES)
    for role in roles:
        assert sorted(role["allowedMemberTypes"]) == ["Application", "User"], role["value"]
        assert role["isEnabled"] is True
        assert str(uuid.UUID(role["id"])) == role["id"], "app role ids are fixed GUIDs: they must never change"
    assert len({role["id"] for role in roles}) == len(roles)
    # v2 tokens carry the appId as `aud`: that is what CALLER_AUTH_AUDIENCE holds.
    assert app["api"]["requestedAccessTokenVersion"] == 2
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["identifierUris"] == ["identifierUri"]
    assert tree["outputs"]["appId"]["value"]["operator"]["operands"] == {"operand_1": "api", "operand_2": "appId"}
    principal = _only_body(rel, "Microsoft.Graph/servicePrincipals")
    assert principal["appId"]["operator"]["operands"] == {"operand_1": "api", "operand_2": "appId"}
    main = _trees()["main.bicep"]
    module = main["modules"]["apiRegistration"]["config"]  # `= if (deployApiRegistration) {...}`
    assert module["condition"] == "deployApiRegistration"
    uri = _resolve(main, module["config"]["params"]["identifierUri"])
    # api://<tenantId>/<string>: accepted by Entra without a verified domain; stable per environment.
    assert re.fullmatch(r"api://\$\{tenant\(\)\.tenantId\}/[\w${}-]+", uri), uri


def test_caller_auth_and_opentelemetry_settings() -> None:
    _tree, properties = _app_settings()
    assert properties["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    connection = properties["APPLICATIONINSIGHTS_CONNECTION_STRING"]["operator"]["operands"]
    assert connection["operand_1"] == "appInsights", "the app configures Azure Monitor only when this is set"
    assert properties["CALLER_AUTH"] == "entra"
    assert properties["CALLER_AUTH_AUDIENCE"] == "callerAuthAudience"
    tenant = properties["CALLER_AUTH_TENANT_ID"]["operator"]
    assert tenant["type"] == "conditional", "defaults to this deployment's tenant"
    # main.bicep hands the function app the appId of the registration it creates, unless given one.
    params = _trees()["main.bicep"]["modules"]["functionApp"]["config"]["params"]
    audience = params["callerAuthAudience"]["operator"]["operands"]
    assert audience["false_value"] == "callerAuthAudience"
    created = audience["true_value"]["operator"]["operands"]["true_value"]
    # The client id (aud of v2.0 tokens) and the Application ID URI, comma-separated.
    assert created == "${apiRegistration.outputs.appId},${apiIdentifierUri}", created
