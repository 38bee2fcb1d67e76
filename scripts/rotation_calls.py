"""Print the outside calls one clean rotation makes, per dependency and route, for each Nylas
target (counted by the emulators; the lease lives in Azurite and is not counted).

    python -m scripts.rotation_calls
"""

from __future__ import annotations

import sys
from collections import Counter

from bootstrap import use_services
from devenv.azurite import start_azurite
from devenv.scenario import operator_pastes, provision
from devenv.wiring import RecordingNotifier, local_env, local_services
from emulators import Emulators

TARGETS = ("v3-credential", "v3-connector", "v2-integration", "manual")


def clean_rotation_calls(emulators: Emulators, svc, target: str) -> Counter[str]:  # type: ignore[no-untyped-def]
    emulators.world.reset()
    tenant = provision(svc, emulators, f"calls-{target}", target)
    emulators.world.clock.advance(days=710)
    emulators.world.reset_calls()
    svc.engine.rotate(tenant.name)
    ours = Counter(emulators.world.calls)
    if target == "manual":
        operator_pastes(svc, emulators, tenant)  # the person's Key Vault read is not the service's call
        emulators.world.reset_calls()
        svc.engine.confirm(tenant.name)
        ours.update(emulators.world.calls)
    return Counter({r: n for r, n in ours.items() if not r.startswith("control.") and r != "keyvault.challenge"})


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    with Emulators.start() as emulators, start_azurite() as azurite:
        svc = local_services(emulators, local_env(emulators, azurite.connection_string), RecordingNotifier())
        use_services(svc)
        results = {t: clean_rotation_calls(emulators, svc, t) for t in TARGETS}
        routes = sorted(set().union(*results.values()))
        rows: list[tuple[str, ...]] = [("dependency", "route", *TARGETS)]
        for route in routes:
            dependency, name = route.split(".", 1)
            rows.append((dependency, name, *(str(results[t][route]) for t in TARGETS)))
        for dependency in ("entra", "graph", "keyvault", "nylas"):
            rows.append(
                (
                    dependency,
                    "(total)",
                    *(str(sum(n for r, n in results[t].items() if r.startswith(dependency + "."))) for t in TARGETS),
                )
            )
        rows.append(("all", "(total)", *(str(sum(results[t].values())) for t in TARGETS)))
        print("Outside calls of one clean rotation (manual: rotate, then confirm), lease excluded:\n")
        print(table(rows))
        svc.graph.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
