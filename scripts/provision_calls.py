"""How many outside calls does POST /api/tenants make? Counted on the local emulators.

    python -m scripts.provision_calls [--log]

Starts the emulators and Azurite, builds the service as in production (settings pointing at them),
provisions one tenant per Nylas target through the real HTTP handler (which answers 202), runs the
queued follow-up that proves, pushes and finishes it through the real queue function, then sends
the same request again (200, settled). Prints the calls per dependency and route (``world.calls``;
the emulators' own control API is not counted) for the request, its follow-up and the repeated
provision, and the reads whose answer the request already had. ``--log`` also prints each fresh
provision's call sequence. Storage (the tenant lease, on Azurite) is not an emulator and is not
counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from blueprints.http_api import provision_tenant
from bootstrap import Services, use_services
from devenv.azurite import start_azurite
from devenv.queue import drain
from devenv.scenario import register_nylas as scenario_register
from devenv.scenario import tenant_body as scenario_body
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators
from emulators.world import World

TARGETS = ("v3-credential", "v3-connector", "v2-integration", "manual")
REPEAT_BUDGET = 2  # a repeated provision costs at most this many outside calls
URL = "https://func.local/api/tenants"
# Emulator-only Nylas credentials: they exist only in this run's in-memory world.

Call = tuple[str, str, str, int]  # (route, method, path, status), as world.call_log has them


@dataclass
class Run:
    target: str
    status: int
    calls: Counter[str]
    log: list[Call] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def tenant_body(target: str) -> dict[str, object]:
    return scenario_body(f"calls-{target}", target)


def register_nylas(emulators: Emulators, body: dict[str, object]) -> None:
    scenario_register(emulators, body)


def outside(world: World) -> tuple[Counter[str], list[Call]]:
    with world.lock:
        calls = Counter({r: n for r, n in world.calls.items() if not r.startswith("control.")})
        log = [c for c in world.call_log if not c[0].startswith("control.")]
    return calls, log


def post(world: World, target: str, body: dict[str, object]) -> Run:
    import azure.functions as func

    world.reset_calls()
    response = provision_tenant(
        func.HttpRequest(
            method="POST",
            url=URL,
            headers={"Content-Type": "application/json"},
            params={},
            route_params={},
            body=json.dumps(body).encode(),
        )
    )
    calls, log = outside(world)
    return Run(target, response.status_code, calls, log)


def resource(call: Call) -> str | None:
    """The object a call reads or writes: a Key Vault secret by name, a Graph app by object id."""
    route, _, path, _ = call
    parts = path.split("/")
    if route.startswith("keyvault.") and len(parts) > 2 and parts[1] == "secrets":
        return f"keyvault secret {parts[2].lower()}"
    if route.startswith("graph.") and len(parts) > 3 and parts[2] == "applications":
        return f"graph application {parts[3]}"
    return None


def returns_state(call: Call) -> bool:
    """Did this call's answer already carry the object's current state (or say it is missing)?
    Key Vault answers a PUT or PATCH with the secret's bundle; Graph answers a PATCH with 204."""
    route, method, _, status = call
    if status not in (200, 201, 404):
        return False
    return method == "GET" or (route.startswith("keyvault.") and method in ("PUT", "PATCH"))


def redundant_reads(log: Sequence[Call]) -> list[tuple[int, Call, int]]:
    """GETs of an object whose state the previous call on that same object had already returned:
    (index, call, index of that previous call)."""
    last: dict[str, int] = {}
    found = []
    for i, call in enumerate(log):
        key = resource(call)
        if key is None:
            continue
        before = last.get(key)
        if call[1] == "GET" and before is not None and returns_state(log[before]):
            found.append((i, call, before))
        last[key] = i
    return found


def table(title: str, runs: Sequence[Run]) -> str:
    routes = sorted({r for run in runs for r in run.calls})
    width = max([len(r) for r in routes] + [len("route"), 12])
    cols = [run.target for run in runs]
    head = f"{'route':<{width}}" + "".join(f"{c:>16}" for c in cols)
    lines = [title, head, "-" * len(head)]
    for dependency in sorted({r.split(".", 1)[0] for r in routes}):
        mine = [r for r in routes if r.split(".", 1)[0] == dependency]
        for route in mine:
            lines.append(f"{route:<{width}}" + "".join(f"{run.calls.get(route, 0):>16}" for run in runs))
        subtotal = [sum(run.calls.get(r, 0) for r in mine) for run in runs]
        lines.append(f"{'  ' + dependency + ' total':<{width}}" + "".join(f"{n:>16}" for n in subtotal))
    lines.append("-" * len(head))
    lines.append(f"{'all outside calls':<{width}}" + "".join(f"{run.total:>16}" for run in runs))
    lines.append(f"{'HTTP status':<{width}}" + "".join(f"{run.status or '-':>16}" for run in runs))
    return "\n".join(lines)


def follow_up(world: World, target: str, services: Services) -> Run:
    """The queued run a 202 leaves behind, delivered as the host delivers it."""
    world.reset_calls()
    drain(services)
    calls, log = outside(world)
    return Run(target, 0, calls, log)


def measure() -> tuple[list[Run], list[Run], list[Run]]:
    fresh: list[Run] = []
    followed: list[Run] = []
    repeated: list[Run] = []
    with Emulators.start() as emulators, start_azurite() as azurite:
        env = local_env(emulators, azurite.connection_string)
        services = local_services(emulators, env, RecordingNotifier())
        use_services(services)
        try:
            # Warm-up outside the count: the service identity's first token for each resource is
            # a per-process cost that any real worker pays once, not per provision.
            warm = tenant_body("manual")
            warm["tenant"] = "calls-warm-up"
            post(emulators.world, "warm-up", warm)
            drain(services)
            for target in TARGETS:
                body = tenant_body(target)
                register_nylas(emulators, body)
                fresh.append(post(emulators.world, target, body))
                followed.append(follow_up(emulators.world, target, services))
                repeated.append(post(emulators.world, target, body))
        finally:
            use_services(None)
            services.graph.close()
    return fresh, followed, repeated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", action="store_true", help="print each fresh provision's call sequence")
    args = parser.parse_args(argv)

    fresh, followed, repeated = measure()
    print(table("Fresh provision, the request (202): outside calls per route (control.* excluded)", fresh))
    print()
    print(table("Its queued follow-up: prove the secret, push it to Nylas, finish", followed))
    print()
    print(table(f"Repeated provision (same request again; budget {REPEAT_BUDGET})", repeated))
    ok = True
    for run in fresh:
        if run.status != 202:
            print(f"\n! fresh provision of {run.target} answered {run.status}")
            ok = False
        rereads = redundant_reads(run.log)
        if rereads:
            print(f"\nReads whose answer the request already had, fresh {run.target} provision:")
            for i, (route, method, path, status), before in rereads:
                print(f"  #{i:<3} {route:<30} {method:<6} {path} -> {status}   (state known from #{before})")
            if rereads[0][1][3] == 404:
                print("  (the second read of the missing tenant secret is the re-check under the tenant lease)")
        if args.log:
            print(f"\nCall sequence, fresh {run.target} provision:")
            for i, (route, method, path, status) in enumerate(run.log):
                print(f"  #{i:<3} {route:<30} {method:<6} {path} -> {status}")
    for run in repeated:
        if run.status != 200 or run.total > REPEAT_BUDGET:
            print(f"\n! repeated provision of {run.target}: {run.status}, {run.total} calls (budget {REPEAT_BUDGET})")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
