"""Real crashes: the operator CLI, in a process of its own, is killed with SIGKILL by the
emulators the moment a randomly chosen outside call arrives, then run again normally.

The service's code carries no test hook: the emulators are told the CLI's pid through their
fault API (``kill_pid``) and kill it themselves. After each kill, the tenant's blob lease is
broken, as its expiry would after LEASE_SECONDS; then a normal run must settle everything
and every invariant of the design must hold.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devenv.oracle import LOOKALIKE, RESTING, recorded
from devenv.scenario import (
    Tenant,
    add_foreign_credential,
    check_anytime,
    check_settled,
    mark_baseline,
    operator_pastes,
    provision,
    register_nylas,
    sign_in_user,
    tenant_body,
)

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("CRASH_RUNS", "20"))  # each: one killed run, then one normal run
KILLED = -signal.SIGKILL


def cli(env_file: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        # -v: the service's INFO log lines on stderr too, for the no-leak check
        [sys.executable, "-m", "rotator", "-v", "--env-file", str(env_file), "--json", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
    )


OUTPUTS: list[str] = []  # every CLI process's stdout and stderr, for the no-leak check


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    OUTPUTS.append(out + err)
    return process.returncode, out, err


def assert_no_secret_printed(emulators) -> None:
    """No CLI process (killed or not) printed a secret value, at any log level it had."""
    everything = "\n".join(OUTPUTS)
    leaked = [s[:3] + "…" for s in emulators.world.secret_values() if s in everything]
    OUTPUTS.clear()
    assert not leaked, f"secret values (hints) in the CLI's output: {leaked}"


@pytest.fixture
def env_file(env: dict[str, str], tmp_path: Path) -> Path:
    path = tmp_path / "local.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    return path


def outside_routes(emulators) -> list[tuple[str, int]]:
    """(route, nth occurrence) of every outside call in the emulators' log, in order."""
    seen: dict[str, int] = {}
    routes = []
    for route, _method, _path, _status in list(emulators.world.call_log):
        if route.startswith("control."):
            continue
        seen[route] = seen.get(route, 0) + 1
        routes.append((route, seen[route]))
    return routes


def run_killed(emulators, env_file: Path, route: tuple[str, int], phase: str, *args: str) -> bool:
    """Start the CLI, arm the kill at the chosen call (before it is applied, or just after it landed),
    wait. True when it was killed there."""
    process = cli(env_file, *args)
    name, nth = route
    emulators.world.faults.inject(name, kill_pid=process.pid, skip=nth - 1, times=1, phase=phase)
    code, _out, _err = finish(process)
    emulators.world.faults.clear()
    return code == KILLED


TARGETS = ("v3-credential", "v3-connector", "v2-integration", "manual")
PHASES = ("before", "after")  # killed before the call is applied, or right after it landed


def settle_by_cli(svc, emulators, env_file: Path, tenant: Tenant) -> list[tuple[str, int]]:
    """A normal run of the CLI, then for the manual target the operator's paste and confirm.
    Returns the outside calls of the rotate run alone (the ones a killed `rotate` can meet)."""
    emulators.world.reset_calls()
    code, _out, err = finish(cli(env_file, "rotate", tenant.name))
    assert code == 0, err[-1500:]
    routes = outside_routes(emulators)
    rec = recorded(emulators, tenant)
    if tenant.target == "manual" and rec is not None and rec.state == "awaiting-confirmation":
        operator_pastes(svc, emulators, tenant)
        code, _out, err = finish(cli(env_file, "confirm", tenant.name))
        assert code == 0, err[-1500:]
    return routes


@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 pairs of CLI processes (CRASH_RUNS); well past the default on a loaded 2-core machine
def test_cli_rotation_killed_at_random_outside_calls_settles_on_the_next_run(svc, emulators, env_file):
    tenants, routes = {}, {}
    for target in TARGETS:
        # v3: a signed-in user who must keep refreshing; v3-credential signs in personal accounts
        # (two secrets at most: no foreign one), the others keep a foreign secret beside ours.
        extra = {"audience": "multi-org"} if target == "v3-connector" else {}
        tenant = provision(svc, emulators, f"crash-{target}", target, **extra)
        if tenant.v3:
            sign_in_user(emulators, tenant, "ada@outlook.com" if target == "v3-credential" else "ada@corp.example")
        if target != "v3-credential":
            add_foreign_credential(emulators, tenant, LOOKALIKE)
        routes[target] = settle_by_cli(svc, emulators, env_file, tenant)
        assert len(routes[target]) >= 10, target
        tenants[target] = tenant
    rng = random.Random(2026)
    kills = 0
    for run in range(RUNS):
        target = TARGETS[run % len(TARGETS)]
        tenant = tenants[target]
        mark_baseline(emulators, tenant)
        route, phase = rng.choice(routes[target]), rng.choice(PHASES)
        where = f"run {run} ({target}), killed {phase} {route}"
        kills += run_killed(emulators, env_file, route, phase, "rotate", tenant.name)
        assert check_anytime(svc, emulators, tenant) == [], where
        svc.deps.leases.break_all()  # what the lease's expiry does after a crash
        rec = recorded(emulators, tenant)
        finished = rec is not None and rec.state in RESTING and rec.key_id not in tenant.baseline
        if not finished:  # killed after its last write landed: the rotation is done, nothing to resume
            settle_by_cli(svc, emulators, env_file, tenant)
        assert check_settled(svc, emulators, tenant) == [], where
    assert kills >= RUNS * 0.9, f"only {kills} of {RUNS} runs reached their kill point"
    assert_no_secret_printed(emulators)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 pairs of CLI processes (CRASH_RUNS); well past the default on a loaded 2-core machine
def test_cli_provisioning_killed_at_random_outside_calls_converges_on_the_next_run(svc, emulators, env_file, tmp_path):
    targets = TARGETS
    routes = {}
    for target in targets:  # the calls a fresh CLI process makes to provision one tenant of each target
        probe = tenant_body(f"probe-{target}", target)
        register_nylas(emulators, probe)
        (tmp_path / "probe.json").write_text(json.dumps(probe))
        emulators.world.reset_calls()
        code, _out, err = finish(cli(env_file, "provision", str(tmp_path / "probe.json")))
        assert code == 0, err[-2000:]
        routes[target] = outside_routes(emulators)
    rng = random.Random(1999)
    kills = 0
    for run in range(RUNS):
        target = targets[run % len(targets)]
        body = tenant_body(f"kill-{run}", target)
        register_nylas(emulators, body)
        request = tmp_path / f"kill-{run}.json"
        request.write_text(json.dumps(body))
        route, phase = rng.choice(routes[target]), rng.choice(PHASES)
        kills += run_killed(emulators, env_file, route, phase, "provision", str(request))
        svc.deps.leases.break_all()
        code, out, err = finish(cli(env_file, "provision", str(request)))
        assert code == 0, f"run {run}, after a kill at {route}: {err[-1500:]}"
        view = json.loads(out)
        view = view.get("tenant", view) if isinstance(view.get("tenant"), dict) else view
        tenant = Tenant(body["tenant"], body, view["appObjectId"], view["clientId"], body["nylas"]["appId"], target)
        if target == "manual":
            operator_pastes(svc, emulators, tenant)
            code, _out, err = finish(cli(env_file, "confirm", tenant.name))
            assert code == 0, f"run {run}: {err[-1500:]}"
        apps = [a for a in emulators.world.graph.apps.values() if a.unique_name == f"nylas-entra-{body['tenant']}"]
        assert len(apps) == 1, f"run {run}, killed at {route}: {len(apps)} apps"
        assert check_settled(svc, emulators, tenant) == [], f"run {run}, killed at {route}"
    assert kills >= RUNS * 0.9, f"only {kills} of {RUNS} runs reached their kill point"
    assert_no_secret_printed(emulators)
