"""`make bench`: every benchmark, side by side in one run, written to docs/benchmarks.md.

    python -m bench [--tenants 1000] [--latency-ms 30] [--scan-secrets 10000] [--cold-runs 9]

Figures are ratios or counts measured in the same run, since these machines are noisy:
  1. outside calls per clean rotation and per provisioning, per dependency (exact counts);
  2. tenants rotated through the queue function with latency on every outside call, at
     concurrency 1, 8 and 32: wall time against the bound calls x latency / N, peak memory;
  3. a scan of 10,000 secrets by the service against a bare SDK paging loop: the time ratio;
  4. cold start: a fresh interpreter importing function_app against one importing only
     azure.functions (median of repeated runs): the difference in milliseconds;
  5. a night with many personal-account tenants due at once under Graph's real write quota
     (60 a minute): all rotated, 429s, wall time against the quota's bound.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import night, rotation_load, scan_bench
from bootstrap import Services, use_services
from clients.keyvault import PAGE_SIZE
from core.telemetry import DEPENDENCY_CALLS, Telemetry, use_telemetry
from devenv.azurite import start_azurite
from devenv.scenario import operator_pastes, provision
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
TARGETS = ("v3-credential", "v3-connector", "v2-integration", "manual")
DEPENDENCIES = ("entra", "graph", "keyvault", "nylas")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- 1. call counts ---------------------------------------------------------------------


def _outside(calls: Counter[str]) -> Counter[str]:
    return Counter({r: n for r, n in calls.items() if not r.startswith("control.") and r != "keyvault.challenge"})


class StorageCalls:
    """Storage answers (leases, the pace blob, the queue) as the service counts them in
    ``rotator.dependency.calls``: Azurite is not an emulator of ours and counts nothing."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.reader = InMemoryMetricReader()
        use_telemetry(Telemetry(MeterProvider(metric_readers=[self.reader])))

    def total(self) -> int:
        data = self.reader.get_metrics_data()
        return sum(
            int(getattr(point, "value", 0))
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == DEPENDENCY_CALLS
            for point in metric.data.data_points
            if (point.attributes or {}).get("dependency") == "storage"
        )


def call_counts() -> dict[str, dict[str, Counter[str]]]:
    """{"provision"|"rotation": {target: Counter(route -> calls)}}; storage answers under the
    route "storage" (counted by the service, not by an emulator)."""
    out: dict[str, dict[str, Counter[str]]] = {"provision": {}, "rotation": {}}
    with Emulators.start() as emulators, start_azurite() as azurite:
        svc: Services = local_services(emulators, local_env(emulators, azurite.connection_string), RecordingNotifier())
        use_services(svc)
        storage = StorageCalls()
        try:
            # Warm up: the service's own tokens for Graph and Key Vault are fetched once per process.
            provision(svc, emulators, "bench-warm-up", "v3-connector")
            for target in TARGETS:
                emulators.world.reset()
                emulators.world.reset_calls()
                before = storage.total()
                tenant = provision(svc, emulators, f"bench-{target}", target, confirm=False)
                out["provision"][target] = _outside(emulators.world.calls)
                out["provision"][target]["storage"] = storage.total() - before
                if target == "manual":
                    operator_pastes(svc, emulators, tenant)
                    svc.engine.confirm(tenant.name)
                emulators.world.clock.advance(days=710)
                emulators.world.reset_calls()
                before = storage.total()
                svc.engine.rotate(tenant.name)
                rotation = Counter(emulators.world.calls)
                if target == "manual":  # the operator's own Key Vault read is not the service's call
                    operator_pastes(svc, emulators, tenant)
                    emulators.world.reset_calls()
                    svc.engine.confirm(tenant.name)
                    rotation.update(emulators.world.calls)
                out["rotation"][target] = _outside(rotation)
                out["rotation"][target]["storage"] = storage.total() - before
        finally:
            use_telemetry(None)
            use_services(None)
            svc.graph.close()
    return out


def calls_table(counts: dict[str, Counter[str]]) -> str:
    rows = ["| dependency | " + " | ".join(TARGETS) + " |", "|---|" + "---:|" * len(TARGETS)]
    for dependency in DEPENDENCIES:
        cells = [str(sum(n for r, n in counts[t].items() if r.startswith(dependency + "."))) for t in TARGETS]
        rows.append(f"| {dependency} | " + " | ".join(cells) + " |")
    rows.append("| **all** | " + " | ".join(f"**{outside_total(counts[t])}**" for t in TARGETS) + " |")
    rows.append("| storage (not in all) | " + " | ".join(str(counts[t]["storage"]) for t in TARGETS) + " |")
    return "\n".join(rows)


def outside_total(calls: Counter[str]) -> int:
    return sum(n for route, n in calls.items() if route != "storage")


# --- 4. cold start ----------------------------------------------------------------------


def cold_start(runs: int) -> tuple[float, float]:
    """Median wall time (ms) of a fresh interpreter importing function_app, and azure.functions alone."""

    def once(module: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True)
        return (time.perf_counter() - started) * 1000

    app, bare = [], []
    once("function_app")  # bytecode compiled once, like a deployed app
    for _ in range(runs):
        app.append(once("function_app"))
        bare.append(once("azure.functions"))
    return statistics.median(app), statistics.median(bare)


# --- the report -------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--scan-secrets", type=int, default=10_000)
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--night-tenants", type=int, default=60)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    started = time.monotonic()

    say("1/5 outside calls per provisioning and per clean rotation...")
    counts = call_counts()
    say(f"2/5 {args.tenants} tenants through the queue function at {args.latency_ms:g} ms per call...")
    load = rotation_load.measure(args.tenants, args.latency_ms, args.concurrency, floor=True)
    floor = load[-1]
    say(f"3/5 scan of {args.scan_secrets} secrets, service against a bare SDK loop...")
    measures, _report, _seeded = scan_bench.run(args.scan_secrets, repeat=3)
    scanner, sdk = measures
    say(f"4/5 cold start, median of {args.cold_runs} fresh interpreters each...")
    app_ms, bare_ms = cold_start(args.cold_runs)
    say(f"5/5 a night of {args.night_tenants} personal-account tenants under Graph's write quota...")
    busy_night = night.run(args.night_tenants)

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    expected_pages = math.ceil(args.scan_secrets / PAGE_SIZE)
    command = f"python -m bench --tenants {args.tenants} --latency-ms {args.latency_ms:g}"
    took = time.monotonic() - started
    service_row = "the service's scan (`rotation.scanner` over `KeyVaultStore.list_properties`)"
    sdk_row = "a bare SDK paging loop (`SecretClient.list_properties_of_secrets(max_page_size=25)`)"
    doc = f"""# Benchmarks

Measured {today} on {machine()}, commit `{commit or "uncommitted"}`, by `make bench`
(`{command}`); {took:.0f} s in all.
Every figure is a count or a ratio of two things measured in the same run: these machines are
noisy, absolute seconds are not comparable between runs.

## 1. Outside calls (exact, counted by the emulators)

A fresh provisioning (through the HTTP handler): the request that answers 202 and its queued
follow-up, which proves the secret, pushes it to Nylas and finishes.
Being two invocations, the follow-up reads the tenant and its app again (one Key Vault and one
Graph read). `python -m scripts.provision_calls` prints the two apart, route by route. The
storage row is Azurite's answers as the service counts them (`rotator.dependency.calls`): the
tenant's lease (acquired, renewed before every outside write to fence it, released) and the
queue; a first run also makes the lease blob and the queue.

{calls_table(counts["provision"])}

A clean rotation (manual: the rotation, then the operator's confirm; the operator's own Key
Vault read excluded). Why each call is needed: [docs/rotation.md](rotation.md#call-budget-of-a-clean-rotation).

{calls_table(counts["rotation"])}

A repeated provisioning of an existing tenant makes 1 call (one Key Vault read).

## 2. {args.tenants} tenants through the queue function, {args.latency_ms:g} ms on every outside call

The emulators run in their own process; this process holds only the service. Bound = outside
calls x latency / concurrency: what the calls alone cost if nothing else did. The rest is the
service's own work, TLS, and the storage calls in Azurite (the lease and its fencing renewals:
the storage row of section 1, not in the bound).

{rotation_load.table(load)}

The last row is the same work at the highest concurrency with **no** added latency: the
machine's own floor ({floor.wall:.1f} s: the service, the emulators and Azurite sharing
{os.cpu_count()} cores). Where the bound falls below that floor, the wall time is set by the
CPU of this machine, not by waiting on calls; the service's own CPU per rotation is the column
before last.

## 3. Scanning {args.scan_secrets} secrets

| | list calls | GETs | seconds (best of 3) |
|---|---:|---:|---:|
| {service_row} | {scanner.list_calls} | {scanner.get_calls} | {scanner.seconds:.2f} |
| {sdk_row} | {sdk.list_calls} | {sdk.get_calls} | {sdk.seconds:.2f} |

ceil(N/25) = {expected_pages}. Service / bare SDK time: **{scanner.seconds / sdk.seconds:.2f}x**.

## 4. Cold start

| fresh interpreter importing | median of {args.cold_runs} (ms) |
|---|---:|
| `function_app` (every blueprint, the clients' modules) | {app_ms:.0f} |
| `azure.functions` only | {bare_ms:.0f} |
| **difference** | **{app_ms - bare_ms:.0f}** |

Clients are built on the first invocation, not at import (`bootstrap.services()`).

## 5. A night of {args.night_tenants} personal-account tenants under Graph's write quota

Apps that sign in personal accounts (Nylas v3's default audience) take 60 application writes a
minute, and a rotation makes two. {args.night_tenants} such `v3-credential` tenants are due at
once; the real timer function scans and queues them with the default pacing
(`GRAPH_WRITES_PER_MINUTE` 55: one start every {2 * 60 / 55:.1f} s, from a pace shared by every
instance), and the real queue function takes each message as Azurite makes it visible. The
Graph emulator enforces the quota (a sliding minute; 429 with `x-ms-throttle-scope`). Bound =
writes / 60 a minute: the fastest the quota allows.

{night.table(busy_night)}

## Commands

```sh
make bench                                   # all of the above, rewrites this file
python -m bench.rotation_load --tenants 200  # one part, printed only
python -m bench.scan_bench --n 10000
python -m bench.night --tenants 60           # the night under Graph's write quota
python -m scripts.rotation_calls             # call table of a clean rotation, per route
python -m scripts.provision_calls            # call table of a provisioning, fresh and repeated
make simulate                                # two emulated years: docs/simulation.png
```
"""
    print(doc)
    if not args.no_write:
        DOC.write_text(doc, encoding="utf-8")
        say(f"written to {DOC.relative_to(ROOT)}")
    night_ok = busy_night.rotated == busy_night.tenants and busy_night.throttled == 0
    return 0 if night_ok and all(r.rotated == r.tenants for r in load) else 1  # the floor row rotates them too


if __name__ == "__main__":
    sys.exit(main())
