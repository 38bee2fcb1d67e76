"""The whole job on local emulators, through the real function handlers: ``make demo``.

1. two customers under one Nylas v3 application, as v3-credential tenants (one Entra app and one
   Nylas connector credential each), and a customer still on v2; a mailbox user of each v3
   customer signs in through Nylas hosted auth;
2. 710 days later: the nightly timer scans Key Vault and queues the due tenants (paced: apps that
   sign in personal accounts take 60 Graph writes a minute); the queue function rotates each one;
3. the signed-in users still refresh: nobody signs in again;
4. the v2 customer moves to v3: a new tenant replaces it, and the v2 tenant is retired;
5. before and after, and the design's invariants checked against the emulated world.

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
    from bootstrap import Services
    from emulators import Emulators

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


NYLAS_APP = "saas-nylas-app"  # one Nylas v3 application, one Entra app per customer under it


def _scenario(emulators: Emulators, storage_connection: str, say: Any, steps: Progress) -> bool:
    import azure.functions as func
    from azure.functions.timer import TimerRequest  # the worker's concrete func.TimerRequest

    from blueprints.http_api import get_tenant_http, list_tenants_http, provision_tenant, retire_tenant
    from blueprints.timer import nightly_scan
    from bootstrap import use_services
    from devenv.queue import drain, queue_client
    from devenv.scenario import (
        Tenant,
        add_foreign_credential,
        check_settled,
        credentials,
        register_nylas,
        sign_in_user,
        tenant_body,
        users_who_cannot_refresh,
    )
    from devenv.wiring import RecordingNotifier, local_env, local_services

    alerts = RecordingNotifier()
    svc = local_services(emulators, local_env(emulators, storage_connection), alerts)
    use_services(svc)
    world = emulators.world
    tenants: list[DemoTenant] = []

    def provision(name: str, target: str, **extra: Any) -> DemoTenant | None:
        body = tenant_body(name, target, **extra)
        register_nylas(emulators, body)
        with steps.step(f"POST /api/tenants  {name} ({target}): 202, the app and its first secret exist"):
            status, data = _http(provision_tenant, "POST", TENANTS_URL, body)
        if status != 202:
            say(f"  {BAD} provisioning {name} answered {status}: {data.get('error', data)}\n")
            return None
        with steps.step(f"the queue proves {name}'s secret, pushes it to Nylas, finishes"):
            drain(svc)
            status, data = _http(get_tenant_http, "GET", f"{TENANTS_URL}/{name}", None, tenant=name)
        if status != 200 or data.get("rotationState") not in ("current", "awaiting-confirmation"):
            say(f"  {BAD} {name} did not settle: {data.get('rotationState', data)}\n")
            return None
        scenario = Tenant(name, body, data["appObjectId"], data["clientId"], body["nylas"]["appId"], target)
        app = world.graph.apps[scenario.object_id].data
        shape = f"{app['signInAudience']}, redirect {app['web']['redirectUris'][0]}"
        say(f"    {name}: app {short(scenario.client_id)} ({shape})\n")
        if data.get("nylas", {}).get("credentialId"):
            say(
                f"    {name}: Nylas connector credential {short(data['nylas']['credentialId'])} (hostedAuthUrl given)\n"
            )
        return DemoTenant(name, target, scenario)

    try:
        # --- 1 ------------------------------------------------------------------------------
        say(
            f"\n[1/5] Two customers under one Nylas v3 application ({NYLAS_APP}), one Entra app each, and a\n"
            "      customer still on Nylas v2\n"
        )
        for name, target, extra in (
            ("contoso", "v3-credential", {"nylas_app": NYLAS_APP}),
            ("fabrikam", "v3-credential", {"nylas_app": NYLAS_APP}),
            ("northwind", "v2-integration", {}),
        ):
            made = provision(name, target, **extra)
            if made is None:
                return False
            tenants.append(made)
        contoso, fabrikam, northwind = (t.scenario for t in tenants)
        with steps.step("mailbox users sign in through Nylas hosted auth, each with their tenant's credential_id"):
            sign_in_user(emulators, contoso, "ada@contoso.example")  # a work account
            sign_in_user(emulators, fabrikam, "bob@outlook.com")  # a personal Microsoft account
        add_foreign_credential(emulators, northwind, "break-glass (added by hand)")
        say(f"    someone adds a credential of their own to {northwind.name}'s app by hand (it must survive)\n\n")
        for t in tenants:
            t.before = _snapshot(svc, t.name)
        say(
            table(
                ("TENANT", "CLIENT ID", "KEY ID", "EXPIRES", "NYLAS TARGET", "STATE"),
                [
                    (
                        t.name,
                        short(t.scenario.client_id),
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
            f"\n[2/5] {INTO_WINDOW_DAYS} days later ({_date(before)} -> {_date(world.clock.now())}): "
            "every secret is inside its 30-day rotation window\n"
        )
        alerts.alerts.clear()
        world.reset_calls()
        with steps.step("timer: nightly_scan lists Key Vault once and queues the due tenants"):
            nightly_scan(TimerRequest())
        queued = queue_client(svc).get_queue_properties().approximate_message_count
        interval = 2 * 60 / svc.settings.graph_writes_per_minute
        say(
            f"    {queued} rotation requests queued in Azurite; apps that sign in personal accounts may take 60\n"
            f"    Graph writes a minute, so their rotations start {interval:.1f} s apart\n"
        )
        with steps.step("queue: rotate_from_queue, one message per tenant (verify through propagation)"):
            calls = len(drain(svc))
        say(
            f"    {calls} messages handled; Entra answered {world.calls['entra.token']} token requests: a new secret\n"
            "    is refused (AADSTS7000215) until it propagates, and the check retries with backoff;\n"
            f"    Graph throttled {world.graph.throttled_count} writes\n"
        )
        for alert in alerts.alerts:
            say(f"    alert {alert.kind} ({alert.severity.value}) for {alert.tenant}: {alert.summary}\n")

        # --- 3 ------------------------------------------------------------------------------
        say("\n[3/5] The signed-in mailboxes: Nylas refreshes each user's token with the secret it holds now\n")
        refresh_ok = True
        for t in tenants[:2]:
            broken = users_who_cannot_refresh(emulators, t.scenario)
            refresh_ok = refresh_ok and not broken
            mark = OK if not broken else BAD
            say(f"  {mark} {t.name}: {len(t.scenario.users)} user(s) still refresh, no new sign-in needed\n")

        # --- 4 ------------------------------------------------------------------------------
        say("\n[4/5] northwind moves to Nylas v3: a new tenant replaces the v2 one, then the v2 one retires\n")
        successor = provision("northwind-v3", "v3-credential", nylas_app=NYLAS_APP, replaces="northwind")
        if successor is None:
            return False
        sign_in_user(emulators, successor.scenario, "carol@northwind.example")
        _, listing = _http(list_tenants_http, "GET", TENANTS_URL)
        pairs = [
            (v["tenant"], v.get("replaces", ""), v.get("replacedBy", ""))
            for v in listing.get("tenants", [])
            if v.get("replaces") or v.get("replacedBy")
        ]
        say(table(("TENANT", "REPLACES", "REPLACED BY"), pairs) + "\n")
        retire = func.HttpRequest(
            method="DELETE",
            url=f"{TENANTS_URL}/northwind",
            headers={},
            params={"confirm": "northwind"},
            route_params={"tenant": "northwind"},
            body=b"",
        )
        with steps.step("DELETE /api/tenants/northwind?confirm=northwind"):
            response = retire_tenant(retire)
        retired = json.loads(response.get_body())
        revoked = len(retired.get("revokedKeyIds", []))
        soft_deleted = ", ".join(retired.get("keyVaultSecretsDeleted", []))
        say(
            f"    retire answered {response.status_code}: revoked {revoked} credential(s) of ours, "
            f"Key Vault secrets soft-deleted: {soft_deleted}\n"
        )
        retired_ok = response.status_code == 200 and not credentials(emulators, northwind)[0]
        retired_ok = retired_ok and northwind.foreign <= {p.key_id for p in credentials(emulators, northwind)[1]}

        # --- 5 ------------------------------------------------------------------------------
        say("\n[5/5] Before and after\n")
        rotated = tenants[:2]
        rows: list[tuple[str, ...]] = []
        for t in rotated:
            t.after = _snapshot(svc, t.name)
            latest = svc.deps.vault.get(f"{svc.settings.secret_prefix}{t.name}")
            works, code = (False, "no value")
            if latest is not None and latest.value:
                works, code = world.entra.token_works(world.entra.tenant_id, t.scenario.client_id, latest.value)
            ours, theirs = credentials(emulators, t.scenario)
            assert t.before is not None
            rows.append(
                (
                    t.name,
                    short(t.before.key_id),
                    short(t.after.key_id),
                    _date(t.after.expires_on),
                    OK if works else f"{BAD} {code}",
                    f"{len(ours)} / {len(theirs)}",
                )
            )
        say(table(("TENANT", "OLD KEY", "NEW KEY", "EXPIRES", "ENTRA OK", "OURS/FOREIGN"), rows) + "\n")
        say("    (ids shortened; a secret is never shown)\n")
        say(
            "\nInvariants, checked against the emulated world, not the service's own view: Nylas holds a secret\n"
            "Entra accepts in each tenant's own credential; it is the latest Key Vault version; exactly one\n"
            "credential of ours; foreign credentials untouched; every signed-in user keeps refreshing.\n"
        )
        ok = refresh_ok
        for t in rotated:
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
                say(f"  {OK} {t.name} ({t.target}): settled, new key, old key revoked, its user still signed in\n")
        broken = check_settled(svc, emulators, successor.scenario)
        ok = ok and not broken
        say(
            f"  {OK if not broken else BAD} northwind-v3 (v3-credential): current; "
            + ("; ".join(broken) or "its user signed in")
            + "\n"
        )
        ok = ok and retired_ok
        say(
            f"  {OK if retired_ok else BAD} northwind (v2-integration): retired, none of our credentials left, "
            "the foreign one kept\n"
        )
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
