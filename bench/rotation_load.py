"""Many tenants rotated through the queue function, with latency on every outside call.

    python -m bench.rotation_load [--tenants 1000] [--latency-ms 30] [--concurrency 1 8 32]

The emulators run in a process of their own (devenv.remote), so this process holds only the
service: its wall time and its peak memory are the service's. Each level rotates every tenant
once: the emulated clock moves 710 days forward, so every 730-day secret is due, then one
queue message per tenant goes through ``rotate_from_queue`` on a pool of N workers (as the
Functions host would run N messages at once). The bound is what the calls alone must cost:
outside calls x latency / N. The lease (Azurite) is real work too, but not in the bound.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import azure.functions as func

from blueprints.queue import rotate_from_queue
from bootstrap import Services, build_services, use_services
from core.ports import RotationRequest
from core.settings import Settings
from devenv.azurite import Azurite, start_azurite
from devenv.remote import RemoteEmulators
from devenv.scenario import tenant_body
from devenv.wiring import RecordingNotifier
from provisioning.request import parse_request


@dataclass
class LoadResult:
    concurrency: int
    tenants: int
    wall: float
    calls: int
    latency: float
    peak_rss_mb: float
    rotated: int
    cpu_seconds: float = 0.0  # this process's CPU (user + system) during the level

    @property
    def cpu_ms_per_rotation(self) -> float:
        return 1000 * self.cpu_seconds / max(self.rotated, 1)

    @property
    def bound(self) -> float:
        return self.calls * self.latency / self.concurrency

    @property
    def ratio(self) -> float:
        return self.wall / self.bound if self.bound else float("nan")


class PeakRss:
    """Samples this process's resident set size (Linux /proc) on a thread: no tracing overhead."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return 0
        return pages * 4096

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def outside_calls(remote: RemoteEmulators) -> int:
    return sum(n for route, n in remote.calls().items() if not route.startswith("control."))


def seed(svc: Services, remote: RemoteEmulators, tenants: int) -> list[str]:
    names = [f"load-{i:04d}" for i in range(tenants)]
    targets = ("v3-connector", "v2-integration")  # automated targets: nobody confirms by hand here

    def one(index_name: tuple[int, str]) -> None:
        index, name = index_name
        # Work accounts only: this measures throughput, not Graph's 60-a-minute quota on
        # personal-account apps (bench.night does that).
        body = tenant_body(name, targets[index % 2], audience="multi-org")
        nylas = body["nylas"]
        remote.add_nylas_app("v3" if nylas["target"] == "v3-connector" else "v2", nylas["appId"], nylas["credential"])
        svc.provisioner.provision(parse_request(body))

    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(one, enumerate(names)), 1):
            if done % 100 == 0:
                print(f"  provisioned {done}/{tenants}", file=sys.stderr, flush=True)
    return names


def run_level(remote: RemoteEmulators, names: list[str], concurrency: int, latency: float) -> LoadResult:
    remote.latency(0)
    remote.advance(days=710)  # every secret is now inside its 30-day window
    remote.reset_calls()
    remote.latency(latency)
    bodies = [RotationRequest(name, "due").to_json() for name in names]

    def one(body: str) -> None:
        rotate_from_queue(func.QueueMessage(id=uuid.uuid4().hex, body=body))

    with PeakRss() as rss:
        cpu_before = time.process_time()
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, bodies))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    remote.latency(0)
    calls = remote.calls()
    total = sum(n for route, n in calls.items() if not route.startswith("control."))
    return LoadResult(
        concurrency, len(names), wall, total, latency, rss.peak / 2**20, calls.get("graph.add_password", 0), cpu
    )


def build(remote: RemoteEmulators, azurite: Azurite) -> Services:
    suffix = uuid.uuid4().hex[:8]
    env = {
        **remote.env(),
        "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_QUEUE": f"rotation-requests-{suffix}",
        "LEASE_CONTAINER": f"rotation-leases-{suffix}",
        "LEASE_SECONDS": "30",
        "HTTP_RETRY_BASE_SECONDS": "0.05",
    }
    return build_services(Settings.from_env(env), clock=remote, sleep=remote.sleep, notifier=RecordingNotifier())


def measure(tenants: int, latency_ms: float, levels: list[int], *, floor: bool = False) -> list[LoadResult]:
    """One result per concurrency level; with ``floor``, one more at the highest level with no
    added latency: what the machine itself allows (CPU of the service, emulators and Azurite)."""
    with RemoteEmulators() as remote, start_azurite() as azurite:
        svc = build(remote, azurite)
        use_services(svc)
        try:
            print(f"seeding {tenants} tenants (no latency)...", file=sys.stderr, flush=True)
            names = seed(svc, remote, tenants)
            results = []
            for level in levels:
                print(f"rotating {tenants} tenants at concurrency {level}...", file=sys.stderr, flush=True)
                results.append(run_level(remote, names, level, latency_ms / 1000))
            if floor:
                print(f"rotating {tenants} tenants at concurrency {max(levels)}, no latency...", file=sys.stderr)
                results.append(run_level(remote, names, max(levels), 0.0))
            return results
        finally:
            use_services(None)
            svc.graph.close()


def table(results: list[LoadResult]) -> str:
    head = (
        "| concurrency | tenants rotated | outside calls | calls/rotation | bound (s) | wall (s) "
        "| wall / bound | service CPU / rotation (ms) | peak RSS (MiB) |"
    )
    rows = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        level = f"{r.concurrency}" if r.latency else f"{r.concurrency}, no latency (floor)"
        bound, ratio = (f"{r.bound:.1f}", f"{r.ratio:.2f}") if r.latency else ("-", "-")
        rows.append(
            f"| {level} | {r.rotated} | {r.calls} | {r.calls / max(r.tenants, 1):.1f} | {bound} "
            f"| {r.wall:.1f} | {ratio} | {r.cpu_ms_per_rotation:.0f} | {r.peak_rss_mb:.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rotation_load", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args(argv)
    results = measure(args.tenants, args.latency_ms, args.concurrency)
    print(table(results))
    print(f"median wall/bound: {statistics.median(r.ratio for r in results if r.latency):.2f}")
    return 0 if all(r.rotated == r.tenants for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
