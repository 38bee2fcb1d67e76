"""The whole job on local emulators, through the real function handlers: ``make demo``.

1. provision three tenants (one per Nylas target) with POST /api/tenants; the operator pastes the
   manual tenant's secret in the (emulated) Nylas dashboard and confirms;
2. 710 days later: the nightly timer scans Key Vault and queues the due tenants; the queue
   function rotates each one (Azurite is the queue);
3. the operator confirms the manual tenant's new secret;
4. before and after, and the design's invariants checked against the emulated world.

Nothing printed is a secret value: ids, key ids, expiry dates and three-character hints only,
and the demo checks that at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.factory import Services
    from emulators import Emulators

TENANTS = (("contoso", "v3-connector"), ("fabrikam", "v2-integration"), ("northwind", "manual"))
INTO_WINDOW_DAYS = 710  # a 730-day secret with a 30-day window is due after day 700
PROPAGATION_DELAY = 8.0  # Entra answers AADSTS7000215 for a new secret this long (emulated time)
TENANTS_URL = "https://func.example/api/tenants"
OK, BAD = "✓", "✗"
NOISY = ("azure", "msal", "httpx", "httpcore", "urllib3", "kiota_http", "kiota_abstractions", "msgraph")


# --- output -----------------------------------------------------------------------------


class Tee(io.TextIOBase):
    """Writes through to a stream and keeps a copy (to check that no secret was printed)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())


class Progress:
    """``with progress.step("starting Azurite"):`` — a spinner on a terminal, dots otherwise."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: IO[str] | Tee) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        started = time.monotonic()
        stop = threading.Event()
        spinner: threading.Thread | None = None
        if self.tty:

            def spin() -> None:
                n = 0
                while not stop.wait(0.1):
                    self.stream.write(f"\r  {self.FRAMES[n % len(self.FRAMES)]} {text} ")
                    self.stream.flush()
                    n += 1

            spinner = threading.Thread(target=spin, daemon=True)
            spinner.start()
        else:
            self.stream.write(f"  … {text} ")
            self.stream.flush()
        ok = False
        try:
            yield
            ok = True
        finally:
            stop.set()
            if spinner is not None:
                spinner.join()
                self.stream.write("\r")
                self.stream.write(f"  {OK if ok else BAD} {text} ")
            took = time.monotonic() - started
            self.stream.write(f"({took:.1f} s)\n" if ok else "failed\n")
            self.stream.flush()


def table(headers: tuple[str, ...], rows: Sequence[Sequence[object]]) -> str:
    from rotator.output import table as render

    return render(headers, rows, indent="  ")


# --- the scenario -----------------------------------------------------------------------


@dataclass
class Snapshot:
    key_id: str
    expires_on: datetime | None
    state: str


@dataclass
class DemoTenant:
    name: str
    target: str
    scenario: Any  # devenv.scenario.Tenant
    before: Snapshot | None = None
    after: Snapshot | None = None
    notes: list[str] = field(default_factory=list)


def _snapshot(svc: Services, name: str) -> Snapshot:
    from devenv.scenario import Tenant, record

    latest, rec = record(svc, Tenant(name, {}, "", "", "", ""))
    return Snapshot(rec.key_id, latest.expires_on, rec.state.value)


def _http(handler: Any, method: str, url: str, body: Any = None, **route: str) -> tuple[int, dict[str, Any]]:
    from devenv.scenario import http_request

    response = handler(http_request(method, url, body, **route))
    data: dict[str, Any] = json.loads(response.get_body() or b"{}")
    return response.status_code, data


def _confirm(name: str) -> tuple[int, dict[str, Any]]:
    from blueprints.http_api import confirm_rotation

    return _http(confirm_rotation, "POST", f"{TENANTS_URL}/{name}/rotation/confirm", None, tenant=name)


def run(
    out: IO[str],
    progress: IO[str] | None = None,
    *,
    emulators: Emulators | None = None,
    storage_connection: str | None = None,
) -> int:
    """Run the demo, printing to ``out`` (progress to ``progress``); 0 when every invariant holds.
    Starts its own emulators and Azurite unless given them."""
    from devenv.azurite import start_azurite
    from emulators import Emulators

    started = time.monotonic()
    tee_out = Tee(out)
    tee_progress = Tee(progress or out)
    steps = Progress(tee_progress)
    say = tee_out.write
    say("nylas-entra-rotator demo: provision, rotate and verify on local emulators\n")
    say("(Entra ID, Microsoft Graph, Key Vault and Nylas over HTTPS; Azurite for the lease and the queue)\n\n")
    with contextlib.ExitStack() as stack:
        say("[0/4] Start the local cloud\n")
        if emulators is None:
            with steps.step("emulators (Entra, Graph, Key Vault, Nylas)"):
                emulators = stack.enter_context(Emulators.start(propagation_delay=PROPAGATION_DELAY))
        if storage_connection is None:
            with steps.step("Azurite (blob leases, the rotation queue)"):
                storage_connection = stack.enter_context(start_azurite()).connection_string
        ok = _scenario(emulators, storage_connection, say, steps)
        secrets = emulators.world.secret_values()
    printed = tee_out.copy.getvalue() + tee_progress.copy.getvalue()
    leaked = [s for s in secrets if s in printed]
    say(f"  {OK if not leaked else BAD} no secret value appears in this output ({len(secrets)} known to the world)\n")
    ok = ok and not leaked
    verdict = "All invariants hold" if ok else "SOME INVARIANTS FAILED"
    say(f"\n{verdict}. Finished in {time.monotonic() - started:.1f} s.\n")
    tee_out.flush()
    return 0 if ok else 1


def _scenario(emulators: Emulators, storage_connection: str, say: Any, steps: Progress) -> bool:
    from azure.functions.timer import TimerRequest  # the worker's concrete func.TimerRequest

    from blueprints.http_api import provision_tenant
    from blueprints.timer import nightly_scan
    from clients.factory import use_services
    from devenv.queue import drain, queue_client
    from devenv.scenario import (
        Tenant,
        add_foreign_credential,
        check_settled,
        credentials,
        operator_pastes,
        register_nylas,
        tenant_body,
    )
    from devenv.wiring import RecordingNotifier, local_env, local_services

    alerts = RecordingNotifier()
    svc = local_services(emulators, local_env(emulators, storage_connection), alerts)
    use_services(svc)
    world = emulators.world
    tenants: list[DemoTenant] = []
    try:
        # --- 1 ------------------------------------------------------------------------------
        say("\n[1/4] Provision three tenants through POST /api/tenants (one per Nylas target)\n")
        for name, target in TENANTS:
            body = tenant_body(name, target)
            register_nylas(emulators, body)
            with steps.step(f"POST /api/tenants  {name} ({target})"):
                status, data = _http(provision_tenant, "POST", TENANTS_URL, body)
            if status != 201:
                say(f"  {BAD} provisioning {name} answered {status}: {data.get('error', data)}\n")
                return False
            scenario = Tenant(name, body, data["appObjectId"], data["clientId"], body["nylas"]["appId"], target)
            tenants.append(DemoTenant(name, target, scenario))
            if target == "manual":
                say(f"    {name} is awaiting confirmation: the v2 dashboard has no API, a person pastes the secret\n")
                operator_pastes(svc, emulators, scenario)
                with steps.step(f"operator pastes it, POST /api/tenants/{name}/rotation/confirm"):
                    status, data = _confirm(name)
                say(f"    confirm answered {status}: {data.get('result')}\n")
        contoso = tenants[0].scenario
        add_foreign_credential(emulators, contoso, "break-glass (added by hand)")
        say(f"    someone adds a credential of their own to {contoso.name}'s app by hand (it must survive)\n\n")
        for t in tenants:
            t.before = _snapshot(svc, t.name)
        say(
            table(
                ("TENANT", "CLIENT ID", "KEY ID", "EXPIRES", "NYLAS TARGET", "STATE"),
                [
                    (
                        t.name,
                        t.scenario.client_id,
                        short(t.before.key_id),
                        _date(t.before.expires_on),
                        t.target,
                        t.before.state,
                    )
                    for t in tenants
                    if t.before
                ],
            )
            + "\n"
        )

        # --- 2 ------------------------------------------------------------------------------
        before = world.clock.now()
        world.clock.advance(days=INTO_WINDOW_DAYS)
        say(
            f"\n[2/4] {INTO_WINDOW_DAYS} days later ({_date(before)} -> {_date(world.clock.now())}): "
            "every secret is inside its 30-day rotation window\n"
        )
        alerts.alerts.clear()
        world.reset_calls()
        with steps.step("timer: nightly_scan lists Key Vault once and queues the due tenants"):
            nightly_scan(TimerRequest())
        queued = queue_client(svc).get_queue_properties().approximate_message_count
        say(f"    {queued} rotation requests queued in Azurite\n")
        with steps.step("queue: rotate_from_queue, one message per tenant (verify through propagation)"):
            calls = len(drain(svc))
        say(f"    {calls} messages handled; the manual tenant parks until a person pastes the new secret\n")
        say(
            f"    Entra answered {world.calls['entra.token']} token requests for {len(tenants)} new secrets: a new\n"
            "    secret is refused (AADSTS7000215) until it propagates, and the check retries with backoff\n"
        )
        middle = [(t.name, t.target, _snapshot(svc, t.name).state) for t in tenants]
        say(table(("TENANT", "NYLAS TARGET", "STATE"), middle) + "\n")
        for alert in alerts.alerts:
            say(f"    alert {alert.kind} ({alert.severity.value}) for {alert.tenant}: {alert.summary}\n")

        # --- 3 ------------------------------------------------------------------------------
        say("\n[3/4] The operator pastes the manual tenant's new secret and confirms\n")
        for t in tenants:
            if t.target != "manual":
                continue
            operator_pastes(svc, emulators, t.scenario)
            with steps.step(f"POST /api/tenants/{t.name}/rotation/confirm"):
                status, data = _confirm(t.name)
            say(f"    confirm answered {status}: {data.get('result')}, revoked key {data.get('revokedKeyId')}\n")

        # --- 4 ------------------------------------------------------------------------------
        say("\n[4/4] Before and after\n")
        rows: list[tuple[str, ...]] = []
        for t in tenants:
            t.after = _snapshot(svc, t.name)
            latest = svc.deps.vault.get(f"{svc.settings.secret_prefix}{t.name}")
            works, code = (False, "no value")
            if latest is not None and latest.value:
                works, code = world.entra.token_works(world.entra.tenant_id, t.scenario.client_id, latest.value)
            history = world.nylas.history(t.scenario.nylas_app_id)
            ours, theirs = credentials(emulators, t.scenario)
            new_hint = next((p.hint for p in ours if p.key_id == t.after.key_id), "")
            held = "-"
            if history:
                _, client_id, hint = history[-1]
                same = client_id == t.scenario.client_id and hint == new_hint
                held = f"{short(client_id)} {hint}… ({'= new key' if same else 'NOT the new key'})"
            assert t.before is not None
            rows.append(
                (
                    t.name,
                    short(t.before.key_id),
                    short(t.after.key_id),
                    _date(t.after.expires_on),
                    held,
                    OK if works else f"{BAD} {code}",
                    f"{len(ours)} / {len(theirs)}",
                )
            )
        headers = ("TENANT", "OLD KEY", "NEW KEY", "EXPIRES", "NYLAS HOLDS (client, hint)", "ENTRA OK", "OURS/FOREIGN")
        say(table(headers, rows) + "\n")
        say("    (ids shortened; a secret is never shown, only Graph's three-character hint)\n")
        say(
            "\nInvariants, checked against the emulated world, not the service's own view: Nylas holds a secret\n"
            "Entra accepts; it is the latest Key Vault version; exactly one credential of ours, every other one\n"
            "of ours removed; foreign credentials untouched; one new credential per rotation.\n"
        )
        ok = True
        for t in tenants:
            assert t.before is not None and t.after is not None
            broken = check_settled(svc, emulators, t.scenario)
            ours, _ = credentials(emulators, t.scenario)
            if t.after.key_id == t.before.key_id:
                broken.append("the key id did not change")
            if any(p.key_id == t.before.key_id for p in ours):
                broken.append("the old credential was not revoked")
            ok = ok and not broken
            if broken:
                say(f"  {BAD} {t.name} ({t.target}): " + "; ".join(broken) + "\n")
            else:
                foreign = f"; its {len(t.scenario.foreign)} foreign credential kept" if t.scenario.foreign else ""
                say(f"  {OK} {t.name} ({t.target}): settled, new key, old key revoked{foreign}\n")
        manual = [t.name for t in tenants if t.target == "manual"]
        asked = {a.tenant for a in alerts.alerts if a.kind == "manual-action"}
        if set(manual) <= asked:
            say(f"  {OK} the operator was alerted (manual-action) for {', '.join(manual)}\n")
        else:
            ok = False
            say(f"  {BAD} no manual-action alert for {', '.join(sorted(set(manual) - asked))}\n")
        return ok
    finally:
        use_services(None)
        svc.graph.close()


def short(identifier: str) -> str:
    from rotator.output import short as cut

    return cut(identifier)


def _date(value: datetime | None) -> str:
    from rotator.output import date

    return date(value)


def configure_logging() -> Path:
    """Every log line to a file, none on the console: the demo's output is for a person."""
    path = Path(tempfile.gettempdir()) / "nylas-entra-rotator-demo.log"
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    return path


def main() -> int:
    log_path = configure_logging()
    # Progress on the terminal when there is one; otherwise on stderr, so stdout stays the report.
    progress = sys.stdout if sys.stdout.isatty() else sys.stderr
    try:
        code = run(sys.stdout, progress)
    except Exception as exc:
        print(f"\ndemo failed: {exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0][:300]}", file=sys.stderr)
        print(f"the service's log: {log_path}", file=sys.stderr)
        return 1
    print(f"The service's log: {log_path}")
    return code
