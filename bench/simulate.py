"""Two emulated years of unattended operation, day by day, through the real function handlers.

    python -m bench.simulate [--tenants 100] [--days 730] [--fault-rate 0.05] [--crash-rate 0.01]

Every day: Key Vault's Event Grid events (some duplicated, late or out of order) go to the
Event Grid function; the nightly timer function scans and queues; the queue is drained through
the queue function (a failed message comes back, five failures make it poison); operators
confirm manual tenants 0 to 10 days after being asked. Meanwhile the emulators fail a share
of all outside calls (500, 503, 429, dropped connections) and a share of rotations die at a
random point. After every day the design's invariants are checked against the emulated world.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from blueprints.eventgrid import on_key_vault_event
from blueprints.http_api import confirm_rotation, provision_tenant
from blueprints.timer import nightly_scan
from bootstrap import Services, use_services
from core.errors import DependencyError
from core.record import MARKER, RotationState, TenantRecord, secret_name
from core.settings import Settings
from devenv.azurite import Azurite, start_azurite
from devenv.oracle import LOOKALIKE
from devenv.queue import Delivery, drain
from devenv.scenario import (
    CREDENTIAL_NAME,
    PROVISION_URL,
    http_request,
    is_our_credential,
    register_nylas,
    tenant_body,
)
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators

ROOT = Path(__file__).resolve().parent.parent
SEAMS = ("graph", "vault", "verifier", "nylas")
MAX_DEQUEUE = 5  # host.json maxDequeueCount
LIFETIMES = (90, 180, 365, 730)


class SimulatedCrash(BaseException):
    pass


class KeepRecords(logging.Handler):
    """Every log record of the run, for the no-leak check at the end."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class CrashPlan:
    """Arms a crash at the n-th seam call of the current queue-function invocation."""

    def __init__(self) -> None:
        self.countdown = 0

    def wrap(self, real: Any) -> Any:
        plan = self

        class Seam:
            def __getattr__(self, name: str) -> Any:
                attr = getattr(real, name)
                if not callable(attr) or name.startswith("_"):
                    return attr

                def call(*args: Any, **kwargs: Any) -> Any:
                    if plan.countdown > 0:
                        plan.countdown -= 1
                        if plan.countdown == 0:
                            raise SimulatedCrash(name)
                    return attr(*args, **kwargs)

                return call

        return Seam()


@dataclass
class SimTenant:
    name: str
    target: str
    lifetime: int
    start_day: int
    nylas_app_id: str = ""
    object_id: str = ""
    client_id: str = ""
    foreign: set[str] = field(default_factory=set)
    confirmed_once: bool = False
    confirm_on_day: int | None = None
    key_changes: list[tuple[int, str]] = field(default_factory=list)
    days_left: list[tuple[int, float]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)  # Nylas grants of signed-in mailbox users
    hosted: bool = False  # Nylas hosted auth (custom auth signs users in through the customer's own flow)


@dataclass
class Report:
    tenants: int = 0
    days: int = 0
    rotations: int = 0
    rotations_by_target: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    max_credentials: int = 0
    min_days_left: float = float("inf")
    breaks: list[str] = field(default_factory=list)
    faults_injected: int = 0
    crashes: int = 0
    events: Counter[str] = field(default_factory=Counter)
    poison: int = 0
    seconds: float = 0.0
    log_records: int = 0  # the service's log records read by the no-leak check
    leaks: list[str] = field(default_factory=list)  # hints of secret values found in them

    def lines(self) -> list[str]:
        alerts = ", ".join(f"{k} {v}" for k, v in sorted(self.alerts.items())) or "none"
        events = ", ".join(f"{k} {v}" for k, v in sorted(self.events.items())) or "none"
        by_target = ", ".join(f"{k} {v}" for k, v in sorted(self.rotations_by_target.items())) or "none"
        return [
            f"tenants                    {self.tenants}",
            f"days simulated             {self.days}",
            f"rotations done             {self.rotations} ({by_target})",
            f"faults injected (calls)    {self.faults_injected}",
            f"rotations crashed midway   {self.crashes}",
            f"poison messages            {self.poison}",
            f"key vault events           {events}",
            f"alerts by kind             {alerts}",
            f"most credentials on an app {self.max_credentials}",
            f"least validity left (days) {self.min_days_left:.1f}",
            f"invariant breaks           {len(self.breaks)}",
            f"log records checked        {self.log_records} ({len(self.leaks)} with a secret value)",
            f"wall time                  {self.seconds:.1f} s",
        ]


class Simulation:
    def __init__(
        self,
        emulators: Emulators,
        azurite: Azurite,
        *,
        tenants: int,
        days: int,
        fault_rate: float,
        crash_rate: float,
        seed: int,
        progress: bool = True,
        lifetimes: tuple[int, ...] = LIFETIMES,
    ) -> None:
        self.lifetimes = lifetimes
        self.emu = emulators
        self.world = emulators.world
        self.rng = random.Random(seed)
        self.seed = seed
        self.days = days
        self.fault_rate = fault_rate
        self.crash_rate = crash_rate
        self.progress = progress
        self.alerts = RecordingNotifier()
        # Years, not Graph's minute: the 60-writes-a-minute quota of personal-account apps is the
        # night benchmark's subject (bench.night). Here it is off, and the pace is instant, so
        # that a busy emulated night does not cost real minutes of queue delays.
        emulators.world.graph.personal_write_limit = None
        env = local_env(
            emulators, azurite.connection_string, VERIFY_BUDGET_SECONDS="300", GRAPH_WRITES_PER_MINUTE="100000"
        )
        self.svc: Services = local_services(emulators, env, self.alerts)
        self.settings: Settings = self.svc.settings
        self.crash = CrashPlan()
        self.real_seams = {name: getattr(self.svc.deps, name) for name in SEAMS}
        self.report = Report(tenants=tenants, days=days)
        self.tenants = self._plan_tenants(tenants)
        self.pending_events: list[tuple[int, dict[str, Any]]] = []
        self.seen_versions: set[str] = set()

    # --- set-up -------------------------------------------------------------------------

    def _plan_tenants(self, count: int) -> list[SimTenant]:
        targets = ("v3-credential", "v3-connector", "v2-integration", "manual")
        planned = []
        for i in range(count):
            target = targets[i % len(targets)]
            lifetime = self.rng.choice(self.lifetimes)
            planned.append(SimTenant(f"t{i:03d}", target, lifetime, start_day=self.rng.randrange(0, 60)))
        for tenant in planned[: max(1, count // 20)]:  # a few live under a 180-day lifetime policy
            self.world.graph.app_lifetime_policies[f"{self.settings.secret_prefix}{tenant.name}"] = 180
            tenant.lifetime = 730  # they ask for 730 and get 180
        return planned

    def _provision(self, tenant: SimTenant, day: int) -> bool:
        # The same request on every try (a failed provisioning is retried tomorrow as it was sent).
        choose = random.Random(f"{self.seed}/{tenant.name}")
        region = choose.choice(["us", "eu"])
        auth = (
            {"mode": "hosted", "region": region}
            if choose.random() < 0.5
            else {"mode": "native", "redirectUri": f"https://app.example.com/{tenant.name}/callback"}
        )
        # Every v3-credential tenant is one customer of the same Nylas application; a v3-connector
        # tenant signs in work accounts only (so it may carry a foreign secret: it has room).
        extra: dict[str, Any] = {"nylas_app": "sim-shared"} if tenant.target == "v3-credential" else {}
        if tenant.target == "v3-connector":
            extra["audience"] = "multi-org"
        if auth["mode"] == "native" and tenant.target.startswith("v3-"):
            auth = {"mode": "custom", "redirectUri": auth["redirectUri"]}
        if tenant.target == "v3-credential":
            region = "us"  # the shared Nylas application lives in one region
            if auth["mode"] == "hosted":
                auth["region"] = region
        body = tenant_body(
            tenant.name, tenant.target, auth=auth, region=region, secretLifetimeDays=tenant.lifetime, **extra
        )
        if tenant.nylas_app_id == "":
            register_nylas(self.emu, body)
            tenant.nylas_app_id = body["nylas"]["appId"]
        response = provision_tenant(http_request("POST", PROVISION_URL, body))
        if response.status_code not in (200, 201):
            return False  # a fault: provisioning is retried tomorrow with the same body
        out = json.loads(response.get_body())
        tenant.object_id, tenant.client_id = out["appObjectId"], out["clientId"]
        tenant.hosted = auth["mode"] == "hosted"
        if not tenant.foreign and tenant.target != "v3-credential" and self.rng.random() < 0.3:
            key_id, _ = self.world.graph.add_password_direct(tenant.object_id, LOOKALIKE)
            tenant.foreign.add(key_id)
        if out["rotationState"] == RotationState.AWAITING_CONFIRMATION:
            tenant.confirm_on_day = day + self.rng.randint(0, 10)
        return True

    # --- one day ------------------------------------------------------------------------

    def run(self) -> Report:
        use_services(self.svc)
        started = time.monotonic()
        kept = KeepRecords()
        root = logging.getLogger()
        root.addHandler(kept)
        level = root.level
        root.setLevel(logging.DEBUG)
        try:
            for day in range(self.days):
                self.world.faults.chaos(0.0)
                for tenant in self.tenants:
                    if tenant.start_day <= day and not tenant.object_id:
                        self.world.faults.chaos(self.fault_rate, seed=self.seed * 100_000 + day)
                        self._provision(tenant, day)
                self.world.faults.chaos(self.fault_rate, seed=self.seed * 1_000 + day)
                self._deliver_events(day)
                self._nightly(day)
                self._drain(day)
                self._confirm_manual(day)
                self.world.faults.chaos(0.0)
                self._check(day)
                self.world.clock.advance(days=1)
                if self.progress and day % 30 == 29:
                    print(
                        f"  day {day + 1:>4}/{self.days}: {self.report.rotations} rotations, "
                        f"{len(self.report.breaks)} breaks",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            root.removeHandler(kept)
            root.setLevel(level)
            self.report.faults_injected = self.world.faults.chaos_hits
            use_services(None)
            self.svc.graph.close()
        # Every log record of two years, at every level, against every secret the world ever made.
        secrets = self.world.secret_values()
        everything = "\n".join(r.getMessage() + " " + str(r.__dict__) + (r.exc_text or "") for r in kept.records)
        self.report.log_records = len(kept.records)
        self.report.leaks = sorted(s[:3] + "…" for s in secrets if s in everything)
        self.report.seconds = time.monotonic() - started
        self.report.alerts = Counter(self.alerts.kinds())
        return self.report

    def _deliver_events(self, day: int) -> None:
        """Key Vault emits NearExpiry 30 days before a version's expiry; Event Grid delivers it at
        least once, sometimes twice, sometimes days late (so out of order)."""
        now = self.world.clock.now()
        with self.world.lock:
            latest = {e.name: e.latest for e in self.world.keyvault.secrets.values() if e.latest.exp}
        for name, version in latest.items():
            if version.exp is None or (version.tags or {}).get("managed-by") != MARKER:
                continue
            left = version.exp - now.timestamp()
            kind = "SecretExpired" if left <= 0 else "SecretNearExpiry" if left <= 30 * 86400 else ""
            key = f"{kind}/{version.version}"
            if not kind or key in self.seen_versions:
                continue
            self.seen_versions.add(key)
            event = {"type": kind, "name": name, "version": version.version, "exp": version.exp, "nbf": version.nbf}
            copies = 2 if self.rng.random() < 0.2 else 1
            for _ in range(copies):
                delay = self.rng.choice((0, 0, 0, 1, 2, 3))
                self.pending_events.append((day + delay, event))
        due = [e for d, e in self.pending_events if d <= day]
        self.pending_events = [(d, e) for d, e in self.pending_events if d > day]
        self.rng.shuffle(due)
        for event in due:
            self.report.events[event["type"]] += 1
            data = {
                "Id": f"https://vault/secrets/{event['name']}/{event['version']}",
                "VaultName": "sim",
                "ObjectType": "Secret",
                "ObjectName": event["name"],
                "Version": event["version"],
                "NBF": event["nbf"],
                "EXP": str(event["exp"]) if self.rng.random() < 0.5 else event["exp"],
            }
            grid_event = func.EventGridEvent(
                id=str(uuid.uuid4()),
                data=data,
                topic="/subscriptions/sim/resourceGroups/sim/providers/Microsoft.KeyVault/vaults/sim",
                subject=event["name"],
                event_type=f"Microsoft.KeyVault.{event['type']}",
                event_time=self.world.clock.now(),
                data_version="1",
            )
            try:
                on_key_vault_event(grid_event)
            except DependencyError:
                self.pending_events.append((day + 1, event))  # Event Grid retries delivery

    def _nightly(self, day: int) -> None:
        for _ in range(4):  # the timer's retry policy: 3 retries
            try:
                nightly_scan(TimerRequest())
                return
            except DependencyError:
                continue

    def _drain(self, day: int) -> None:
        deliveries = drain(self.svc, max_rounds=200, around=self._maybe_crash)
        self.report.poison += sum(1 for d in deliveries if d.queue.endswith("-poison"))

    @contextlib.contextmanager
    def _maybe_crash(self, delivery: Delivery) -> Iterator[None]:
        """For a share of deliveries, the worker dies at a random point of the rotation: the host
        sees the invocation fail and hands the message out again."""
        if delivery.queue.endswith("-poison") or self.rng.random() >= self.crash_rate:
            yield
            return
        self.crash.countdown = self.rng.randint(1, 12)
        for name in SEAMS:
            setattr(self.svc.deps, name, self.crash.wrap(self.real_seams[name]))
        try:
            yield
        except SimulatedCrash:
            self.report.crashes += 1
            raise RuntimeError("the worker process died mid-rotation") from None
        finally:
            self.crash.countdown = 0
            for name in SEAMS:
                setattr(self.svc.deps, name, self.real_seams[name])

    def _confirm_manual(self, day: int) -> None:
        for tenant in self.tenants:
            if tenant.target != "manual" or not tenant.object_id:
                continue
            record, value = self._latest(tenant)
            if record is None or record.state is not RotationState.AWAITING_CONFIRMATION:
                tenant.confirm_on_day = None
                continue
            if tenant.confirm_on_day is None:
                tenant.confirm_on_day = day + self.rng.randint(0, 10)
            if day < tenant.confirm_on_day:
                continue
            app = self.world.nylas.apps[tenant.nylas_app_id]
            with self.world.lock:
                self.world.nylas.record(app, tenant.client_id, value or "")  # the operator pastes it
            response = confirm_rotation(
                http_request("POST", f"{PROVISION_URL}/{tenant.name}/rotation/confirm", tenant=tenant.name)
            )
            if response.status_code == 200:
                tenant.confirmed_once = True
                tenant.confirm_on_day = None

    # --- invariants, read straight from the emulated world --------------------------------

    def _latest(self, tenant: SimTenant) -> tuple[TenantRecord | None, str | None]:
        with self.world.lock:
            entry = self.world.keyvault.secrets.get(secret_name(self.settings.secret_prefix, tenant.name))
            if entry is None:
                return None, None
            return TenantRecord.from_tags(entry.latest.tags), entry.latest.value

    def _check(self, day: int) -> None:
        world = self.world
        now = world.clock.now()
        for tenant in self.tenants:
            if not tenant.object_id:
                continue
            record, value = self._latest(tenant)
            if record is None:
                self._break(day, tenant, "no Key Vault record")
                continue
            with world.lock:
                app = world.graph.apps[tenant.object_id]
                creds = list(app.password_credentials)
                held = world.nylas.current(tenant.nylas_app_id)
            ours = [p for p in creds if is_our_credential(p.display_name)]
            theirs = {p.key_id for p in creds if not is_our_credential(p.display_name)}
            if tenant.target == "v3-credential":
                held = self._credential_held(tenant)
            if app.data.get("signInAudience") == "AzureADandPersonalMicrosoftAccount" and len(creds) > 2:
                self._break(day, tenant, f"6: a personal-account app holds {len(creds)} secrets")
            if tenant.target.startswith("v3-") and tenant.hosted and not tenant.users:
                self._sign_in(tenant)
            for grant in tenant.users:
                refreshed, why = world.nylas.refresh_grant(tenant.nylas_app_id, grant)
                if not refreshed:
                    self._break(day, tenant, f"6: a signed-in user cannot refresh ({why})")
            self.report.max_credentials = max(self.report.max_credentials, len(ours))
            automated = tenant.target != "manual"
            if automated or tenant.confirmed_once:
                works = held is not None and world.entra.token_works(world.entra.tenant_id, held[0], held[1])[0]
                if not works:
                    self._break(day, tenant, "1: Nylas holds a secret Entra rejects")
                elif held is not None:
                    end = next(p.end for p in creds if p.secret == held[1])
                    left = (end - now).total_seconds() / 86400
                    tenant.days_left.append((day, left))
                    self.report.min_days_left = min(self.report.min_days_left, left)
            recorded = {record.key_id, record.previous_key_id} - {""}
            if len([p for p in ours if p.key_id not in recorded]) > 1:
                self._break(day, tenant, "2: more than one credential of ours is not recorded")
            ok, code = world.entra.token_works(world.entra.tenant_id, tenant.client_id, value or "")
            if not ok:
                self._break(day, tenant, f"2: the latest Key Vault version does not work ({code})")
            if not tenant.foreign <= theirs:
                self._break(day, tenant, "3: a foreign credential was removed")
            if record.state.settled and len(ours) > 2:
                self._break(day, tenant, f"3: {len(ours)} credentials of ours on a settled app")
            if not tenant.key_changes or tenant.key_changes[-1][1] != record.key_id:
                if tenant.key_changes and record.state is not RotationState.RESTORED:
                    self.report.rotations += 1
                    self.report.rotations_by_target[tenant.target] += 1
                    spacing = day - tenant.key_changes[-1][0]
                    if spacing < min(record.lifetime_days, tenant.lifetime) // 2 - 1:
                        self._break(day, tenant, f"5: rotated again after only {spacing} days")
                tenant.key_changes.append((day, record.key_id))

    def _credential_held(self, tenant: SimTenant) -> tuple[str, str] | None:
        """The tenant's own connector credential at Nylas, found by its name (not by our record)."""
        wanted = CREDENTIAL_NAME.format(tenant=tenant.name)
        found = [c for c in self.world.nylas.credentials(tenant.nylas_app_id) if c["name"] == wanted]
        return self.world.nylas.credential(tenant.nylas_app_id, found[0]["id"]) if found else None

    def _sign_in(self, tenant: SimTenant) -> None:
        """A mailbox user signs in once the tenant exists: Nylas must keep refreshing her token."""
        from devenv.mailbox import SignInRefused, sign_in

        credential = None
        if tenant.target == "v3-credential":
            wanted = CREDENTIAL_NAME.format(tenant=tenant.name)
            found = [c for c in self.world.nylas.credentials(tenant.nylas_app_id) if c["name"] == wanted]
            if not found:
                return  # not pushed yet: tomorrow
            credential = str(found[0]["id"])
        email = f"user@{tenant.name}.example" if tenant.target == "v3-connector" else f"{tenant.name}@outlook.com"
        try:
            tenant.users.append(
                sign_in(
                    self.emu,
                    nylas_app_id=tenant.nylas_app_id,
                    email=email,
                    credential_id=credential,
                    region=self.world.nylas.apps[tenant.nylas_app_id].region,
                )
            )
        except SignInRefused as refused:
            self.report.breaks.append(f"{tenant.name} ({tenant.target}): a user could not sign in: {refused}")

    def _break(self, day: int, tenant: SimTenant, what: str) -> None:
        self.report.breaks.append(f"day {day} {tenant.name} ({tenant.target}): {what}")


def draw(tenants: list[SimTenant], days: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5), dpi=110)
    colours = {"v3-credential": "#9467bd", "v3-connector": "#1f77b4", "v2-integration": "#2ca02c", "manual": "#d62728"}
    for tenant in tenants:
        if tenant.days_left:
            xs, ys = zip(*tenant.days_left, strict=True)
            ax.plot(xs, ys, color=colours[tenant.target], alpha=0.35, linewidth=0.9)
    for target, colour in colours.items():
        ax.plot([], [], color=colour, label=target)
    ax.axhline(30, color="grey", linestyle="--", linewidth=0.8, label="rotate-before window (30 days)")
    ax.axhline(0, color="black", linewidth=1.0)
    ax.set_xlim(0, days)
    ax.set_ylim(bottom=-5)
    ax.set_xlabel("day of the simulation")
    ax.set_ylabel("days until the secret Nylas holds expires")
    ax.set_title(f"{len(tenants)} tenants over {days} emulated days, with faults: no secret ever expires")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def simulate(
    *,
    tenants: int = 100,
    days: int = 730,
    fault_rate: float = 0.05,
    crash_rate: float = 0.01,
    seed: int = 7,
    picture: Path | None = None,
    progress: bool = True,
    lifetimes: tuple[int, ...] = LIFETIMES,
) -> Report:
    with Emulators.start() as emulators, start_azurite() as azurite:
        sim = Simulation(
            emulators,
            azurite,
            tenants=tenants,
            days=days,
            fault_rate=fault_rate,
            crash_rate=crash_rate,
            seed=seed,
            progress=progress,
            lifetimes=lifetimes,
        )
        report = sim.run()
        if picture is not None:
            draw(sim.tenants, days, picture)
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of outside calls that fail")
    parser.add_argument("--crash-rate", type=float, default=0.01, help="share of rotations that die midway")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--picture", type=Path, default=ROOT / "docs" / "simulation.png")
    parser.add_argument("--log", type=Path, help="write the service's logs here (default: discard)")
    args = parser.parse_args(argv)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(logging.FileHandler(args.log) if args.log else logging.NullHandler())
    print(
        f"Simulating {args.tenants} tenants for {args.days} days "
        f"({args.fault_rate:.0%} of calls faulted, {args.crash_rate:.0%} of rotations crashed)...",
        file=sys.stderr,
    )
    report = simulate(
        tenants=args.tenants,
        days=args.days,
        fault_rate=args.fault_rate,
        crash_rate=args.crash_rate,
        seed=args.seed,
        picture=args.picture,
    )
    print("\n".join(report.lines()))
    for line in report.breaks[:20]:
        print("  BREAK", line)
    print(f"picture: {args.picture.relative_to(ROOT) if args.picture.is_relative_to(ROOT) else args.picture}")
    ok = not report.breaks and report.min_days_left > 0
    print("result: " + ("PASS: zero invariant breaks, no tenant reached expiry" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
