"""A night with many personal-account tenants due at once, under Graph's real write quota.

    python -m bench.night [--tenants 60] [--writes-per-minute 55]

Apps that sign in personal accounts take 60 application writes a minute (world-facts §4c), and
a rotation makes two (addPassword, removePassword). N such tenants are provisioned (quota off,
so that seeding is quick), moved into their window, and the quota is switched on: then the real
nightly timer function scans and queues them, and the real queue function takes each message
as Azurite makes it visible. The bound is what the quota alone allows: writes / 60 a minute.
The figures: all rotated, 429s answered by Graph's quota, wall time against that bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from azure.functions.timer import TimerRequest

from blueprints.timer import nightly_scan
from bootstrap import use_services
from devenv.azurite import start_azurite
from devenv.queue import drain
from devenv.scenario import provision
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators

QUOTA_PER_MINUTE = 60  # Graph's, for AzureADandPersonalMicrosoftAccount applications (G11)


@dataclass
class NightResult:
    tenants: int
    rotated: int
    writes: int
    throttled: int
    wall: float
    writes_per_minute: int

    @property
    def bound(self) -> float:
        return self.writes * 60.0 / QUOTA_PER_MINUTE

    @property
    def ratio(self) -> float:
        return self.wall / self.bound if self.bound else float("nan")


def run(tenants: int, writes_per_minute: int = 55) -> NightResult:
    with Emulators.start() as emulators, start_azurite() as azurite:
        world = emulators.world
        env = local_env(emulators, azurite.connection_string, GRAPH_WRITES_PER_MINUTE=str(writes_per_minute))
        svc = local_services(emulators, env, RecordingNotifier())
        use_services(svc)
        try:
            world.graph.personal_write_limit = None  # seeding is not the night under test
            names = []
            for i in range(tenants):
                names.append(provision(svc, emulators, f"night-{i:03d}", "v3-credential", nylas_app="night-app").name)
                if (i + 1) % 20 == 0:
                    print(f"  provisioned {i + 1}/{tenants}", file=sys.stderr, flush=True)
            before = {n: svc.deps.vault.get(f"{svc.settings.secret_prefix}{n}") for n in names}
            world.clock.advance(days=710)
            world.graph.personal_write_limit = QUOTA_PER_MINUTE
            world.graph.personal_writes.clear()
            world.graph.personal_write_count = 0
            world.graph.throttled_count = 0
            print(f"  the night: {tenants} tenants due, quota on", file=sys.stderr, flush=True)
            started = time.perf_counter()
            nightly_scan(TimerRequest())
            drain(svc, max_rounds=10 * tenants, wait_delayed_seconds=600.0)
            wall = time.perf_counter() - started
            rotated = 0
            for name in names:
                latest = svc.deps.vault.get(f"{svc.settings.secret_prefix}{name}")
                old = before[name]
                if latest is not None and old is not None and latest.version != old.version:
                    rotated += 1
            return NightResult(
                tenants,
                rotated,
                world.graph.personal_write_count,
                world.graph.throttled_count,
                wall,
                writes_per_minute,
            )
        finally:
            use_services(None)
            svc.graph.close()


def table(result: NightResult) -> str:
    return "\n".join(
        [
            "| tenants due | rotated | Graph writes | 429s from Graph | pace (writes/min) | bound (s) | wall (s) "
            "| wall / bound |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {result.tenants} | {result.rotated} | {result.writes} | {result.throttled} "
            f"| {result.writes_per_minute} | {result.bound:.1f} | {result.wall:.1f} | {result.ratio:.2f} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.night", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=60)
    parser.add_argument("--writes-per-minute", type=int, default=55)
    args = parser.parse_args(argv)
    result = run(args.tenants, args.writes_per_minute)
    print(table(result))
    ok = result.rotated == result.tenants and result.throttled == 0
    print("result: " + ("PASS" if ok else "FAIL") + f" (wall / bound {result.ratio:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
