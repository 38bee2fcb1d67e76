"""A local sandbox in one command: ``make sandbox`` (``python -m devenv.sandbox``).

Starts the emulators (``python -m emulators``) and Azurite as child processes, registers the
Nylas applications that the request bodies in ``examples/`` name (through the emulators' control
API, docs/emulators.md), and writes, in the current directory:

* ``.sandbox.env``: every setting the service and the CLI read, Azurite's storage included, as
  ``export NAME=value`` lines (``. ./.sandbox.env``, or ``python -m rotator --env-file .sandbox.env``);
* ``local.settings.json``: the same values in the Functions format, for ``func start`` where Azure
  Functions Core Tools are installed. A local.settings.json this module did not write is left alone.

It prints the next commands and stays in the foreground until Ctrl-C (or SIGTERM); then it stops
both children and removes both files (their ports, CA bundle and service identity end with the
run). ``--detach`` runs the same in the background (its log in ``.sandbox/sandbox.log``) and
returns once the files are written; ``--stop`` ends it. The Makefile: ``make sandbox``,
``make sandbox DETACH=1``, ``make sandbox STOP=1``.

Nothing printed is a secret value. The service identity's secret in the two files exists only in
this run of the emulators; the Nylas credentials are the emulator-only values of examples/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ".sandbox.env"
LOCAL_SETTINGS = "local.settings.json"
STATE_DIR = ".sandbox"  # pid, logs, the ready note of a detached run
PID_FILE, READY_FILE, LOG_FILE, EMULATORS_LOG = "pid", "ready", "sandbox.log", "emulators.log"
WRITTEN_BY = "devenv.sandbox"  # marks the local.settings.json this module wrote (and may remove)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
FUNCTIONS_PORT = 7071
PY = ".venv/bin/python"

# Settings that differ from the production defaults in the sandbox (the emulators give the URLs,
# the identity and the CA bundle; Azurite the storage).
SANDBOX_SETTINGS = {
    # `func start` locally: the function's key, not Entra access tokens (nothing to sign in with).
    "CALLER_AUTH": "function-key",
    "LEASE_SECONDS": "15",
    "VERIFY_BUDGET_SECONDS": "60",
    "HTTP_MAX_RETRIES": "2",
    "HTTP_RETRY_BASE_SECONDS": "0.2",
}


@dataclass(frozen=True)
class NylasApp:
    """A Nylas application the sandbox registers: the ones examples/*.json name."""

    version: str  # "v3" or "v2"
    app_id: str
    credential: str  # v3 API key or v2 client secret: emulator-only values, the same as in examples/
    for_target: str
    connector: bool = False  # v3: a Microsoft connector that holds the customer's default Entra app
    region: str = "us"


NYLAS_APPS = (
    NylasApp("v3", "sandbox-v3-app", "nyk_sandbox_v3_api_key_0001", "v3-credential", connector=True),
    NylasApp("v3", "sandbox-v3-connector-app", "nyk_sandbox_v3_api_key_0002", "v3-connector"),
    NylasApp("v2", "sandbox-v2-client", "sandbox-v2-client-secret-0001", "v2-integration"),
)
# The manual target needs nothing at Nylas: a person pastes the secret in the v2 dashboard.
EXAMPLE_TENANT = "contoso"  # examples/v3-credential.json


class SandboxError(RuntimeError):
    """The sandbox could not start or stop; the message says why and where to look."""


# --- settings ---------------------------------------------------------------------------


def read_emulators_env(text: str) -> tuple[dict[str, str], str]:
    """The file ``python -m emulators --env-file`` writes: ``# control=URL``, then NAME=value lines."""
    values: dict[str, str] = {}
    control = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# control="):
            control = line.partition("=")[2].strip()
        elif line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    if not control:
        raise SandboxError("the emulators' env file names no control URL")
    return values, control


def settings_values(emulators_env: Mapping[str, str], storage_connection: str) -> dict[str, str]:
    """Every setting the service reads (core.settings.SETTINGS, production defaults where the
    sandbox has nothing to say), the emulators' and Azurite's values, and the Functions worker."""
    from core.settings import SETTINGS, Settings

    chosen: dict[str, str] = {name: default for name, (default, _) in SETTINGS.items() if default is not None}
    chosen.update(emulators_env)
    chosen.update(SANDBOX_SETTINGS)
    storage_name = chosen["STORAGE_CONNECTION"]
    values = {"FUNCTIONS_WORKER_RUNTIME": "python", storage_name: storage_connection}
    values.update((name, chosen[name]) for name in SETTINGS if name in chosen)
    values.update((name, value) for name, value in chosen.items() if name not in values)
    missing = [name for name, (default, _) in SETTINGS.items() if default is None and not values.get(name)]
    if missing:
        raise SandboxError(f"the sandbox has no value for the required settings {missing}: add them to {__name__}")
    settings = Settings.from_env(values)  # a bad value is named now, not by the first command
    if not settings.storage.configured:
        raise SandboxError("the sandbox's settings name no storage")
    return values


def _write_private(path: Path, text: str) -> None:
    """Written whole (then renamed), readable by its owner only: it holds the identity's secret."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(partial, path)


def write_env_file(path: Path, values: Mapping[str, str], control: str) -> None:
    lines = [
        "# Written by `make sandbox` (devenv/sandbox.py) for this run only: the emulators' ports, CA bundle",
        "# and service identity change at every start. Removed when the sandbox stops. Load it with",
        f"#   . ./{ENV_FILE}    or    python -m rotator --env-file {ENV_FILE} COMMAND",
        f"# control={control}",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    _write_private(path, "\n".join(lines) + "\n")


def _ours(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("_writtenBy") == WRITTEN_BY


def write_local_settings(path: Path, values: Mapping[str, str]) -> bool:
    """local.settings.json for ``func start``; False (and nothing written) when one exists that
    this module did not write: it is someone's own."""
    if path.exists() and not _ours(path):
        return False
    document = {
        "IsEncrypted": False,
        "Values": dict(values),
        "Host": {"LocalHttpPort": FUNCTIONS_PORT},
        "_writtenBy": WRITTEN_BY,
        "_comment": "Written by `make sandbox` for this run of the emulators and Azurite; removed when it stops. "
        "local.settings.sample.json lists every setting.",
    }
    _write_private(path, json.dumps(document, indent=2) + "\n")
    return True


# --- the children -----------------------------------------------------------------------


def _wait_for(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path, stop: threading.Event
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None:
            raise SandboxError(f"{what} exited at start (code {proc.returncode}); its log: {log}")
        if stop.is_set():
            raise SandboxError("stopped while starting")
        if time.monotonic() > deadline:
            raise SandboxError(f"{what} did not start within {START_TIMEOUT:.0f} s; its log: {log}")
        time.sleep(0.05)


def start_emulators(state: Path, stop: threading.Event) -> tuple[subprocess.Popen[bytes], dict[str, str], str]:
    """``python -m emulators --env-file``: its settings and control URL, read from the file it writes."""
    env_path = state / "emulators.env"
    env_path.unlink(missing_ok=True)
    log = state / EMULATORS_LOG
    with open(log, "wb") as err:
        # Its stdout repeats the settings with the identity's secret: not kept.
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulators", "--env-file", str(env_path)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait_for(env_path.exists, proc, "the emulators", log, stop)
        values, control = read_emulators_env(env_path.read_text(encoding="utf-8"))
    except BaseException:
        _end(proc)
        raise
    finally:
        env_path.unlink(missing_ok=True)
    return proc, values, control


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seed(control: str, ca_bundle: str) -> None:
    """Register the Nylas applications of examples/ through the control API (docs/emulators.md)."""
    context = ssl.create_default_context(cafile=ca_bundle)

    def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            control.rstrip("/") + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as exc:
            raise SandboxError(f"the control API answered {exc.code} to {method} {path}") from None

    for app in NYLAS_APPS:
        if app.version == "v2":
            call(
                "POST",
                "/nylas/apps",
                {"version": "v2", "client_id": app.app_id, "client_secret": app.credential, "region": app.region},
            )
            continue
        call(
            "POST",
            "/nylas/apps",
            {"version": "v3", "app_id": app.app_id, "api_key": app.credential, "region": app.region},
        )
        if app.connector:
            # The connector holds the customer's own default Entra app (made in the portal): what a
            # v3-credential tenant's provisioning finds before it adds the tenant's credential.
            made = call(
                "POST",
                "/graph/foreign_apps",
                {"display_name": f"{app.app_id} default app", "owner": "the-customer", "service_principal": False},
            )
            password = call("POST", f"/graph/apps/{made['id']}/passwords", {"display_name": "made in the portal"})
            call(
                "POST",
                f"/nylas/apps/{app.app_id}/connector",
                {"client_id": made["appId"], "client_secret": password["secretText"], "tenant": "common"},
            )


# --- running, in the foreground or not --------------------------------------------------


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def next_steps(root: Path, control: str, *, detached: bool, wrote_local: bool) -> str:
    env_file = _shown(root / ENV_FILE)
    local = (
        f"{_shown(root / LOCAL_SETTINGS)} (the same values, for func start)"
        if wrote_local
        else f"{LOCAL_SETTINGS} not written: yours is left as it is (move it aside for func start here)"
    )
    apps = [f"{a.app_id} ({a.for_target})" for a in NYLAS_APPS]
    where = "" if detached else ", in another terminal from this directory"
    stop = "make sandbox STOP=1 stops" if detached else "Ctrl-C here (or make sandbox STOP=1 elsewhere) stops"
    removed = f"{ENV_FILE} and {LOCAL_SETTINGS}" if wrote_local else ENV_FILE
    source = env_file if os.path.isabs(env_file) else f"./{env_file}"
    return "\n".join(
        [
            "Sandbox ready: HTTPS emulators of Entra ID, Microsoft Graph, Key Vault and Nylas, and Azurite.",
            f"  settings  {env_file} (every setting, Azurite's storage included)",
            f"            {local}",
            f"  control   {control} (steer the emulated world: docs/emulators.md)",
            f"  Nylas     {', '.join(apps[:2])},",
            f"            {', '.join(apps[2:])}: the applications examples/*.json name",
            "",
            f"Next{where}:",
            f"  . {source}",
            f"  {PY} -m rotator provision examples/v3-credential.json",
            f"  {PY} -m rotator status",
            f"  {PY} -m rotator rotate {EXAMPLE_TENANT}",
            f"  func start    # with Azure Functions Core Tools: the HTTP API on http://localhost:{FUNCTIONS_PORT}/api/",
            "",
            f"{stop} the emulators and Azurite and removes {removed}.",
        ]
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # An exited process nobody reaped yet (a zombie) is gone for our purpose.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def running_pid(root: Path) -> int | None:
    """The pid of the sandbox serving ``root``, if one runs."""
    try:
        pid = int((root / STATE_DIR / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        if b"devenv.sandbox" not in cmdline.read_bytes():  # the pid was reused
            return None
    return pid


def serve(root: Path, out: IO[str], *, detached: bool = False) -> int:
    """Start, write the files, wait for Ctrl-C or SIGTERM, stop, clean up. 0 on a clean stop."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    other = running_pid(root)
    if other is not None and other != os.getpid():
        print(f"A sandbox is already running here (pid {other}): stop it with `make sandbox STOP=1`.", file=out)
        return 1
    (state / PID_FILE).write_text(f"{os.getpid()}\n")
    (state / READY_FILE).unlink(missing_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    env_path, local_path = root / ENV_FILE, root / LOCAL_SETTINGS
    emulators: subprocess.Popen[bytes] | None = None
    azurite: Any = None
    wrote_local = False
    code = 0
    try:
        from devenv.azurite import start_azurite

        print("Starting the emulators (Entra ID, Graph, Key Vault, Nylas) and Azurite …", file=out, flush=True)
        emulators, emulators_env, control = start_emulators(state, stop)
        azurite = start_azurite()
        seed(control, emulators_env["CA_BUNDLE"])
        values = settings_values(emulators_env, azurite.connection_string)
        write_env_file(env_path, values, control)
        wrote_local = write_local_settings(local_path, values)
        text = next_steps(root, control, detached=detached, wrote_local=wrote_local)
        _write_private(state / READY_FILE, text + "\n")
        print(text, file=out, flush=True)
        while not stop.wait(0.5):
            if emulators.poll() is not None or azurite.process.poll() is not None:
                which = "the emulators" if emulators.poll() is not None else "Azurite"
                print(f"{which} exited on their own: stopping the sandbox (logs in {_shown(state)})", file=out)
                code = 1
                break
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=out)
        code = 1
    finally:
        print("Stopping the emulators and Azurite …", file=out, flush=True)
        if emulators is not None:
            _end(emulators)
        if azurite is not None:
            azurite.stop()
        env_path.unlink(missing_ok=True)
        if wrote_local and _ours(local_path):
            local_path.unlink(missing_ok=True)
        for name in (READY_FILE, PID_FILE):
            (state / name).unlink(missing_ok=True)
        removed = f"{ENV_FILE} and {LOCAL_SETTINGS}" if wrote_local else ENV_FILE
        print(f"Sandbox stopped; {removed} removed.", file=out, flush=True)
    return code


def detach(root: Path, out: IO[str]) -> int:
    """Run ``serve`` in a process of its own session; return once its files are written."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    other = running_pid(root)
    if other is not None:
        print(f"A sandbox is already running here (pid {other}): stop it with `make sandbox STOP=1`.", file=out)
        return 1
    (state / READY_FILE).unlink(missing_ok=True)
    log = state / LOG_FILE
    with open(log, "wb") as fh:
        child = subprocess.Popen(
            [sys.executable, "-m", "devenv.sandbox", "--serve", "--dir", str(root)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        with contextlib.suppress(OSError, ValueError):
            return (state / READY_FILE).exists() and int((state / PID_FILE).read_text()) == child.pid
        return False

    try:
        _wait_for(ready, child, "the sandbox", log, threading.Event())
    except SandboxError as exc:
        _end(child)
        print(f"sandbox: {exc}", file=out)
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-10:]
        print("\n".join(f"  | {line}" for line in tail), file=out)
        return 1
    print((state / READY_FILE).read_text(encoding="utf-8").rstrip(), file=out)
    print(f"(running in the background as pid {child.pid}; its log: {_shown(log)})", file=out)
    return 0


def stop_running(root: Path, out: IO[str]) -> int:
    pid = running_pid(root)
    if pid is None:
        print("No sandbox is running here.", file=out)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        # A detached sandbox leads its own process group: its children go with it.
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        print(f"The sandbox (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s: killed.", file=out)
        return 1
    print(f"Sandbox stopped (pid {pid}): the emulators and Azurite ended, its files removed.", file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.sandbox",
        description="A local sandbox for the CLI and `func start`: the emulators and Azurite, with "
        f"{ENV_FILE} and {LOCAL_SETTINGS} written for them. Stays in the foreground until Ctrl-C.",
        epilog="The Makefile: make sandbox, make sandbox DETACH=1, make sandbox STOP=1.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true", help="run in the background; return once it is ready")
    mode.add_argument("--stop", action="store_true", help="stop the sandbox running here (detached or not)")
    mode.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the detached process itself
    parser.add_argument(
        "--dir", default=".", metavar="PATH", help="where the files go (default: here, the repository root)"
    )
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if args.stop:
        return stop_running(root, sys.stdout)
    if args.detach:
        return detach(root, sys.stdout)
    return serve(root, sys.stdout, detached=args.serve)


if __name__ == "__main__":
    raise SystemExit(main())
