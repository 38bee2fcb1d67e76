"""``make sandbox`` (devenv/sandbox.py), the request bodies in examples/, and the read-only CLI
commands that need no storage.

The README's "Try it locally" lines (between ``<!-- sandbox:begin -->`` and ``<!-- sandbox:end -->``)
run as written, one after the other in one shell, in a throw-away copy of the repository: with
nothing else set up, provision, status and rotate succeed, and no secret value is printed."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from bootstrap import build_services, use_services
from core.settings import SETTINGS, Settings
from devenv import sandbox
from devenv.scenario import provision
from rotator.cli import main, read_env_file

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- sandbox:begin -->", "<!-- sandbox:end -->"
EXAMPLES = ROOT / "examples"
WRITE_WORDS = ("set", "update", "add", "remove", "patch", "create", "delete", "upsert", "purge", "recover")
# Everything of the repository but its history, its set-up and what the sandbox writes.
NOT_COPIED = {
    ".git",
    ".venv",
    ".venv-checkov",
    "node_modules",
    ".hypothesis",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    sandbox.ENV_FILE,
    sandbox.LOCAL_SETTINGS,
    sandbox.STATE_DIR,
}


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README.md needs one sandbox block"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    fenced = re.fullmatch(r"\s*```sh\n(.*?)```\s*", block, re.S)
    assert fenced, "the sandbox block is one ```sh fence"
    return [line for line in fenced.group(1).splitlines() if line.strip()]


def example(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository made of links to its files, so that what the sandbox writes lands
    here. The venv and node_modules are the repository's, with fresh set-up markers: `make` must not
    reinstall a shared venv because someone's requirements.txt is newer (a fresh clone's set-up is
    CI's own test)."""
    for entry in ROOT.iterdir():
        if entry.name not in NOT_COPIED:
            (tmp_path / entry.name).symlink_to(entry)
    venv = tmp_path / ".venv"
    venv.mkdir()
    for entry in (ROOT / ".venv").iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()
    modules = tmp_path / "node_modules"
    modules.mkdir()
    (modules / ".bin").symlink_to(ROOT / "node_modules" / ".bin")
    (modules / ".installed").touch()
    return tmp_path


class Shell:
    """One bash for all the lines (``. ./.sandbox.env`` must reach the next ones): each line's exit
    code and output (stdout and stderr together)."""

    def __init__(self, cwd: Path) -> None:
        # Only what any terminal has: no setting of ours leaks in from the test run.
        keep = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TERM")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        assert self.proc.stdin is not None
        marker = f"@@done-{uuid.uuid4().hex}"
        self.proc.stdin.write(f'{command}\necho "{marker} $?"\n')
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.startswith(marker):
                code = int(line.split()[1])
                break
            out.append(line)
        text = "".join(out)
        self.transcript.append(f"$ {command}\n{text}")
        return code, text

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def secrets_of(env: dict[str, str]) -> set[str]:
    """Every secret value the sandbox's world holds that a command could print: the service
    identity's, the Nylas credentials of examples/, and every version of every Key Vault secret
    (read as the service, before the sandbox stops)."""
    found = {env["AZURE_CLIENT_SECRET"]}
    found |= {app.credential for app in sandbox.NYLAS_APPS}
    svc = build_services(Settings.from_env(env), storage=False)
    try:
        for props in svc.vault.list_properties():
            for version in svc.vault.list_versions(props.name):
                latest = svc.vault.get(props.name, version.version)
                if latest is not None and latest.value:
                    found.add(latest.value)
    finally:
        svc.graph.close()
    return {s for s in found if len(s) >= 8}


def test_the_readme_sandbox_lines_run_as_written_and_provision_status_and_rotate_succeed(checkout):
    lines = readme_lines()
    assert lines[-1].startswith("make sandbox STOP=1"), "the block ends by stopping the sandbox"
    tenant = str(example("v3-credential")["tenant"])
    shell = Shell(checkout)
    started = time.monotonic()
    results: dict[str, tuple[int, str]] = {}
    try:
        for line in lines[:-1]:
            code, out = shell.run(line)
            assert code == 0, f"{line!r} exited {code}:\n{out}"
            results[line] = (code, out)
        # Read before the last line stops it all.
        env = read_env_file(str(checkout / sandbox.ENV_FILE))
        local = json.loads((checkout / sandbox.LOCAL_SETTINGS).read_text(encoding="utf-8"))
        secrets = secrets_of(env)
        code, out = shell.run(lines[-1])
        assert code == 0, f"{lines[-1]!r} exited {code}:\n{out}"
    finally:
        shell.close()
        if sandbox.running_pid(checkout) is not None:
            sandbox.stop_running(checkout, io.StringIO())
    took = time.monotonic() - started

    def output(word: str) -> str:
        found = [out for line, (_, out) in results.items() if f"rotator {word}" in line]
        assert len(found) == 1, f"the README block has one `rotator {word}` line"
        return found[0]

    provisioned = output("provision")
    assert f"{tenant}: provisioned" in provisioned and "state          current" in provisioned
    first_key = re.search(r"key id\s+([0-9a-f-]{36})", provisioned)
    assert first_key, provisioned
    status = output("status")
    assert tenant in status and "current" in status and "1 tenants." in status
    assert first_key.group(1) in status
    rotated = output("rotate")
    assert f"{tenant}: rotated: key" in rotated and f"revoked {first_key.group(1)}" in rotated

    # One complete set of settings, storage included, in both files; the Functions format for func.
    assert local["IsEncrypted"] is False and local["Values"] == env
    assert set(SETTINGS) <= set(env)
    assert env["AzureWebJobsStorage"].startswith("DefaultEndpointsProtocol=http;")
    assert env["CA_BUNDLE"] and env["CALLER_AUTH"] == "function-key"
    # Stopped: the children are gone and so are the files that pointed at them.
    assert not (checkout / sandbox.ENV_FILE).exists() and not (checkout / sandbox.LOCAL_SETTINGS).exists()
    assert sandbox.running_pid(checkout) is None

    printed = "\n".join(shell.transcript)
    leaked = [s[:3] + "…" for s in secrets if s in printed]
    assert not leaked, f"secret values (hints shown) printed by the README's lines: {leaked}"
    assert len(secrets) >= 6  # identity, 3 Nylas credentials, contoso's two versions
    print(f"README sandbox lines: {took:.1f} s")


def test_the_files_the_sandbox_writes_are_git_ignored():
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", sandbox.ENV_FILE, sandbox.LOCAL_SETTINGS, f"{sandbox.STATE_DIR}/pid"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == [sandbox.ENV_FILE, sandbox.LOCAL_SETTINGS, f"{sandbox.STATE_DIR}/pid"]


def test_a_local_settings_json_the_sandbox_did_not_write_is_left_alone(tmp_path):
    mine = tmp_path / sandbox.LOCAL_SETTINGS
    mine.write_text('{"IsEncrypted": false, "Values": {"KEY_VAULT_URL": "https://kv-mine.vault.azure.net/"}}')
    assert sandbox.write_local_settings(mine, {"A": "b"}) is False
    assert "kv-mine" in mine.read_text()

    ours = tmp_path / "other" / sandbox.LOCAL_SETTINGS
    ours.parent.mkdir()
    assert sandbox.write_local_settings(ours, {"A": "b"}) is True
    assert sandbox.write_local_settings(ours, {"A": "c"}) is True  # its own: rewritten
    assert json.loads(ours.read_text())["Values"] == {"A": "c"}


@pytest.fixture
def cli(capsys, emulators):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        leaked = [s[:3] + "…" for s in emulators.world.secret_values() if s in out or s in err]
        assert not leaked, f"secret values (hints shown) printed by {argv}: {leaked}"
        return code, out, err

    return run


def test_every_example_provisions_and_rotates_against_the_world_the_sandbox_seeds(svc, emulators, cli):
    sandbox.seed(emulators.urls["control"], emulators.ca_path)
    files = sorted(EXAMPLES.glob("*.json"))
    targets = {str(example(f.stem)["nylas"]["target"]): f for f in files}
    assert set(targets) == {"v3-credential", "v3-connector", "v2-integration", "manual"}
    listed = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"({f.name})" in listed for f in files), "examples/README.md lists every example"

    for target, path in targets.items():
        tenant = str(example(path.stem)["tenant"])
        code, out, err = cli("provision", str(path))
        assert code == 0, err
        assert f"{tenant}: provisioned" in out
        if target == "manual":
            assert "awaiting-confirmation" in out
            code, out, err = cli("confirm", tenant)
        else:
            code, out, err = cli("rotate", tenant)
            assert f"{tenant}: rotated" in out
        assert code == 0, err

    code, out, _ = cli("--json", "status")
    assert code == 0
    assert {t["tenant"]: t["rotationState"] for t in json.loads(out)["tenants"]} == {
        str(example(f.stem)["tenant"]): "current" for f in files
    }


def test_read_only_commands_need_no_storage_and_the_others_name_it(svc, emulators, cli, monkeypatch):
    made = provision(svc, emulators, "readonly", "v3-connector")
    use_services(None)  # the CLI builds its own, from the environment: the emulators' settings only
    for name, value in emulators.env().items():
        monkeypatch.setenv(name, value)
    for name in list(os.environ):
        if name.startswith("AzureWebJobsStorage"):
            monkeypatch.delenv(name)
    emulators.world.reset_calls()

    code, out, err = cli("status")
    assert code == 0, err
    assert made.name in out and "1 tenants." in out
    code, out, err = cli("status", made.name)
    assert code == 0 and made.client_id in out, err
    code, out, err = cli("plan")
    assert code == 0 and "Dry run: nothing was changed" in out, err
    code, out, err = cli("cleanup")
    assert code == 0 and "Dry run: nothing removed" in out, err

    for argv in (("rotate", made.name), ("cleanup", "--apply")):
        code, out, err = cli(*argv)
        assert code == 2 and "storage is not configured" in err and "AzureWebJobsStorage" in err, (argv, err)
    written = [r for r in emulators.world.calls if any(w in r.split(".", 1)[1] for w in WRITE_WORDS)]
    assert written == [], written
