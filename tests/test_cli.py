"""The operator CLI (``python -m rotator``) against the emulators and Azurite, called in-process
with the service installed as the functions see it. Every run is checked for secret values in
its stdout and stderr."""

from __future__ import annotations

import json
import shlex

import pytest

import bootstrap as factory
from core.record import MARKER, RotationState
from devenv.scenario import (
    check_settled,
    credentials,
    operator_pastes,
    provision,
    record,
    register_nylas,
    tenant_body,
)
from rotator.cli import main

INTO_WINDOW_DAYS = 710
WRITE_WORDS = ("set", "update", "add", "remove", "patch", "create", "delete", "upsert", "purge", "recover")


@pytest.fixture
def cli(capsys, emulators):
    """Run the CLI; returns (exit code, stdout, stderr) and checks that no secret was printed."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        leaked = [s[:3] + "…" for s in emulators.world.secret_values() if s in out or s in err]
        assert not leaked, f"secret values (hints shown) printed by {argv}: {leaked}"
        return code, out, err

    return run


def writes(world) -> list[str]:
    return [r for r in world.calls if any(w in r.split(".", 1)[1] for w in WRITE_WORDS)]


# --- plan -------------------------------------------------------------------------------


def test_plan_says_what_the_next_run_would_do_for_each_tenant_and_makes_no_write_call(svc, emulators, cli):
    provision(svc, emulators, "due-v3", "v3-connector")
    waiting = provision(svc, emulators, "waiting", "manual")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    svc.engine.rotate(waiting.name)  # parks in awaiting-confirmation
    provision(svc, emulators, "fresh", "v2-integration")
    emulators.world.reset_calls()

    def no_lease(tenant):
        raise AssertionError(f"plan took the lease of {tenant}")

    svc.deps.leases.hold = no_lease

    code, out, _ = cli("plan")
    assert code == 0
    assert "Dry run: nothing was changed" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[:1]}
    assert "rotate" in lines["due-v3"] and "due" in lines["due-v3"]
    assert "remind" in lines["waiting"] and "awaiting-confirmation" in lines["waiting"]
    assert "nothing" in lines["fresh"] and "not-due" in lines["fresh"]

    code, out, _ = cli("plan", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["dryRun"] is True
    assert {t["tenant"]: (t["nextRun"], t["why"]) for t in doc["tenants"]} == {
        "due-v3": ("rotate", "due"),
        "waiting": ("remind", "awaiting-confirmation"),
        "fresh": ("nothing", "not-due"),
    }
    assert writes(emulators.world) == []
    assert set(emulators.world.calls) <= {"keyvault.list_secrets", "keyvault.challenge", "entra.token"}


# --- status -----------------------------------------------------------------------------


def test_status_lists_every_tenant_and_shows_one_in_detail(svc, emulators, cli):
    a = provision(svc, emulators, "alpha", "v3-connector")
    provision(svc, emulators, "beta", "v2-integration")
    _, rec = record(svc, a)

    code, out, _ = cli("status")
    assert code == 0 and "alpha" in out and "beta" in out and rec.key_id in out and "2 tenants" in out

    code, out, _ = cli("status", "alpha")
    assert code == 0
    assert rec.client_id in out and rec.key_id in out and "@Microsoft.KeyVault(SecretUri=https://" in out

    code, out, _ = cli("--json", "status")
    doc = json.loads(out)
    assert code == 0 and doc["count"] == 2
    assert {t["tenant"] for t in doc["tenants"]} == {"alpha", "beta"}


def test_status_of_an_unknown_tenant_fails_with_exit_1_and_a_hint(svc, cli):
    code, out, err = cli("status", "nobody")
    assert code == 1 and out == ""
    assert "not provisioned" in err and "python -m rotator status" in err

    code, out, _ = cli("status", "nobody", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "tenant_not_found"


# --- provision --------------------------------------------------------------------------


def test_provision_from_a_file_creates_the_tenant_and_never_prints_the_nylas_credential(svc, emulators, cli, tmp_path):
    body = tenant_body("filed", "v3-connector")
    register_nylas(emulators, body)
    path = tmp_path / "filed.json"
    path.write_text(json.dumps(body))

    code, out, err = cli("provision", str(path))

    assert code == 0, err
    assert "filed: provisioned" in out
    assert body["nylas"]["credential"] not in out + err
    _, rec = record(svc, provision_view(svc, emulators, "filed"))
    assert rec.state is RotationState.CURRENT and rec.client_id in out

    code, out, _ = cli("provision", str(path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["created"] is False and doc["clientId"] == rec.client_id


def test_provision_of_a_manual_tenant_says_how_to_paste_and_confirm(svc, emulators, cli, tmp_path):
    body = tenant_body("by-hand", "manual")
    register_nylas(emulators, body)
    path = tmp_path / "by-hand.json"
    path.write_text(json.dumps(body))

    code, out, _ = cli("provision", str(path))

    assert code == 0
    assert "awaiting-confirmation" in out
    assert "az keyvault secret show --id https://" in out and "python -m rotator confirm by-hand" in out


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('{"tenant": "x"}', "missing required field"),
        ("not json", "not valid JSON"),
        (json.dumps({**tenant_body("bad"), "nylas": {"target": "v4", "region": "us", "appId": "a"}}), "nylas.target"),
    ],
)
def test_provision_rejects_a_bad_request_file_with_exit_2_naming_the_field(svc, cli, tmp_path, content, named):
    path = tmp_path / "bad.json"
    path.write_text(content)

    code, out, err = cli("provision", str(path))

    assert code == 2 and out == ""
    assert named in err


def test_provision_of_a_missing_file_is_bad_usage(svc, cli, tmp_path):
    code, _, err = cli("provision", str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read it" in err


# --- rotate -----------------------------------------------------------------------------


def test_rotate_a_tenant_forces_a_new_credential_and_revokes_the_old_one(svc, emulators, cli):
    tenant = provision(svc, emulators, "forced", "v3-connector")
    _, before = record(svc, tenant)

    code, out, err = cli("rotate", "forced")

    assert code == 0, err
    _, after = record(svc, tenant)
    assert after.key_id != before.key_id and after.state is RotationState.CURRENT
    assert f"key {after.key_id} is current" in out and f"revoked {before.key_id}" in out
    assert check_settled(svc, emulators, tenant) == []


def test_rotate_due_rotates_each_due_tenant_with_progress_on_stderr_and_leaves_the_rest(svc, emulators, cli):
    due_a = provision(svc, emulators, "due-a", "v3-connector")
    due_b = provision(svc, emulators, "due-b", "v2-integration")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    fresh = provision(svc, emulators, "fresh", "v3-connector")
    _, fresh_before = record(svc, fresh)

    code, out, err = cli("rotate", "--due", "--json")

    assert code == 0, err
    doc = json.loads(out)
    assert doc["scan"]["due"] == 2
    assert {(r["tenant"], r["result"]) for r in doc["results"]} == {("due-a", "rotated"), ("due-b", "rotated")}
    assert "[1/2]" in err and "[2/2]" in err
    assert record(svc, fresh)[1].key_id == fresh_before.key_id
    for tenant in (due_a, due_b):
        assert check_settled(svc, emulators, tenant) == []


def test_rotate_that_nylas_refuses_exits_1_and_points_to_the_runbook(svc, emulators, cli):
    provision(svc, emulators, "refused", "v3-connector")
    emulators.world.faults.inject("nylas.v3_patch_connector", status=401, times=10)

    code, out, _ = cli("rotate", "refused")

    assert code == 1
    assert "Nylas refused the push, nothing revoked" in out and "docs/runbook.md#nylas-refused" in out


def test_rotate_needs_a_tenant_or_due_but_not_both(svc, cli):
    assert cli("rotate")[0] == 2
    assert cli("rotate", "x", "--due")[0] == 2


# --- confirm ----------------------------------------------------------------------------


def test_confirm_finishes_a_manual_rotation_after_the_operator_pastes(svc, emulators, cli):
    tenant = provision(svc, emulators, "hand", "manual")
    emulators.world.clock.advance(days=INTO_WINDOW_DAYS)
    code, out, _ = cli("rotate", "hand")
    assert code == 0 and "awaiting confirmation" in out and "python -m rotator confirm hand" in out
    operator_pastes(svc, emulators, tenant)

    code, out, _ = cli("confirm", "hand", "--json")

    assert code == 0 and json.loads(out)["result"] == "rotated"
    assert check_settled(svc, emulators, tenant) == []


def test_confirm_with_nothing_awaiting_confirmation_exits_1_and_says_why(svc, emulators, cli):
    provision(svc, emulators, "calm", "manual")
    code, _, err = cli("confirm", "calm")
    assert code == 1 and "no rotation awaiting confirmation" in err and "status" in err


# --- cleanup ----------------------------------------------------------------------------


def test_cleanup_is_a_dry_run_by_default_and_apply_removes_old_orphans_of_ours(svc, emulators, cli):
    tenant = provision(svc, emulators, "tidy", "v3-connector")
    world = emulators.world
    orphan, _ = world.graph.add_password_direct(tenant.object_id, "nylas-entra-rotator 10575bad0001")
    world.clock.advance(seconds=2 * 3600)
    world.reset_calls()

    code, out, _ = cli("cleanup")
    assert code == 0 and orphan in out and "would-remove" in out and "Dry run: nothing removed" in out
    assert writes(world) == [] and len(credentials(emulators, tenant)[0]) == 2

    code, out, _ = cli("cleanup", "--apply", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["applied"] is True
    assert [(c["keyId"], c["disposition"]) for c in doc["credentials"]] == [(orphan, "removed")]
    assert check_settled(svc, emulators, tenant) == []


def test_cleanup_lists_tagged_apps_without_a_record(svc, emulators, cli):
    world = emulators.world
    ghost = world.graph.create_app(world.identity.client_id, {"displayName": "Ghost", "tags": [MARKER, "tenant:ghost"]})

    code, out, _ = cli("cleanup")

    assert code == 0 and ghost.app_id in out and "no Key Vault record" in out


def test_cleanup_dry_run_and_apply_are_exclusive(svc, cli):
    assert cli("cleanup", "--dry-run", "--apply")[0] == 2


# --- usage, settings, env file ----------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["bogus"], ["status", "a", "b"], ["--credential", "nope", "plan"]])
def test_bad_usage_exits_2_with_the_usage_line(svc, cli, argv):
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and "usage: python -m rotator" in err


def test_help_exits_0(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "plan" in out and "cleanup" in out and "Exit codes" in out


def test_a_missing_setting_exits_2_naming_it_with_a_hint(emulators, cli, monkeypatch):
    factory.use_services(None)
    monkeypatch.delenv("KEY_VAULT_URL", raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000")

    code, out, err = cli("status")

    assert code == 2 and out == ""
    assert "KEY_VAULT_URL" in err and "--env-file" in err and "hint:" in err


def test_env_file_settings_reach_the_service(emulators, env, cli, monkeypatch, tmp_path):
    factory.use_services(None)
    for name in env:
        monkeypatch.setenv(name, "placeholder")  # restored after the test
    lines = ["# written by hand", ""]
    lines += [f"export {k}={shlex.quote(v)}" if i % 2 else f"{k}={v}" for i, (k, v) in enumerate(env.items())]
    path = tmp_path / "local.env"
    path.write_text("\n".join(lines) + "\n")

    try:
        code, out, err = cli("--env-file", str(path), "status", "--json")
        assert code == 0, err
        assert json.loads(out) == {"tenants": [], "count": 0}
    finally:
        installed = factory._services
        factory.use_services(None)
        if installed is not None:
            installed.graph.close()


def test_an_unreadable_env_file_is_bad_usage(cli, tmp_path):
    path = tmp_path / "broken.env"
    path.write_text("THIS IS NOT A SETTING\n")
    code, _, err = cli("--env-file", str(path), "plan")
    assert code == 2 and "line 1" in err


# --- helpers ----------------------------------------------------------------------------


def provision_view(svc, emulators, name):
    from devenv.scenario import Tenant

    return Tenant(name, {}, "", "", f"nylas-{name}", "")


def test_readme_configuration_table_lists_every_setting_with_its_default():
    """The CLI's settings errors point at README.md#configuration: the table there is the code's."""
    from pathlib import Path

    from core.settings import SETTINGS

    readme = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith("| `")}
    for name, (default, meaning) in SETTINGS.items():
        assert name in rows, f"README configuration table lacks {name}"
        shown = "*(required)*" if default is None else ("*(empty)*" if default == "" else f"`{default}`")
        assert shown in rows[name] and meaning in rows[name], f"README row of {name} is out of date"
