"""The nightly scan over a large vault: list calls, GETs and time, against a bare SDK loop.

    python -m bench.scan_bench [--n 10000] [--repeat 3] [--latency-ms 0]

Seeds N secrets straight into the Key Vault emulator's state (no HTTP), a mix of tenant
records of ours (healthy, due, stuck, awaiting confirmation, a fresh pending run) and
secrets that are not ours, then times ``rotation.scanner.scan`` over
``clients.keyvault.KeyVaultStore.list_properties`` and, for comparison, a bare
``SecretClient.list_properties_of_secrets(max_page_size=25)`` loop that only counts. Both
run over HTTPS against the same emulator with the same credential (token fetched first).
The scan must cost exactly ceil(N/25) list calls and no GET.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from azure.keyvault.secrets import SecretClient

from bootstrap import service_credential
from clients.keyvault import PAGE_SIZE, KeyVaultStore
from core.record import (
    MARKER,
    MARKER_TAG,
    NylasTarget,
    RotationState,
    TenantRecord,
    nylas_credential_secret_name,
    secret_name,
)
from core.settings import Settings
from emulators import Emulators, World
from emulators.world import SecretEntry, SecretVersion
from rotation.scanner import ScanReport, scan

PREFIX = "nylas-entra-"
STUCK_AFTER = timedelta(hours=6)
# One in ten of each: most tenants are healthy; a vault also holds secrets that are not ours.
MIX = (
    "healthy",
    "healthy",
    "healthy",
    "healthy",
    "pending-fresh",
    "due",
    "stuck",
    "awaiting",
    "foreign",
    "nylas-credential",
)
DAY = 86400


@dataclass
class Seeded:
    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, *kinds: str) -> int:
        return sum(self.by_kind.get(k, 0) for k in kinds)

    @property
    def tenants(self) -> int:
        return self.count("healthy", "pending-fresh", "due", "stuck", "awaiting")

    @property
    def needing_work(self) -> int:
        return self.count("due", "stuck", "awaiting")


def _record(tenant: str, state: RotationState) -> TenantRecord:
    return TenantRecord(
        tenant=tenant,
        app_object_id=str(uuid.uuid4()),
        client_id=str(uuid.uuid4()),
        key_id=str(uuid.uuid4()),
        state=state,
        audience="multi-org",
        nylas_target=NylasTarget.V3_CONNECTOR,
        nylas_region="us",
        nylas_app_id=f"nylas-{tenant}",
        nylas_credential=nylas_credential_secret_name(PREFIX, tenant),
        lifetime_days=730,
        rotate_before_days=30,
        previous_key_id=str(uuid.uuid4()) if state is not RotationState.CURRENT else "",
        rotation_id=uuid.uuid4().hex[:12],
    )


def seed(world: World, n: int, *, mix: tuple[str, ...] = MIX) -> Seeded:
    """Put n secrets in the emulated vault, directly in its state. Values are throw-away
    placeholders that exist only in this emulator run."""
    now = int(world.clock.now().timestamp())
    seeded = Seeded(total=n)
    with world.lock:
        for i in range(n):
            kind = mix[i % len(mix)]
            seeded.by_kind[kind] = seeded.by_kind.get(kind, 0) + 1
            tenant = f"t{i:06d}"
            updated = now - 3600
            tags: dict[str, str] | None
            if kind == "foreign":
                name, tags, exp = f"other-app-setting-{i:06d}", {"owner": "someone-else"}, None
            elif kind == "nylas-credential":
                name = nylas_credential_secret_name(PREFIX, tenant)
                tags, exp = {MARKER_TAG: MARKER, "tenant": tenant, "purpose": "nylas-credential"}, None
            else:
                name = secret_name(PREFIX, tenant)
                state, days_left = {
                    "healthy": (RotationState.CURRENT, 400),
                    "pending-fresh": (RotationState.PENDING, 400),
                    "due": (RotationState.CURRENT, 10),
                    "stuck": (RotationState.PENDING, 400),
                    "awaiting": (RotationState.AWAITING_CONFIRMATION, 20),
                }[kind]
                if kind == "stuck":
                    updated = now - int(STUCK_AFTER.total_seconds()) - 3600
                tags, exp = _record(tenant, state).to_tags(), now + days_left * DAY
            version = SecretVersion(
                version=uuid.uuid4().hex,
                value=f"bench-placeholder-{uuid.uuid4().hex}",
                content_type=None,
                enabled=True,
                nbf=None,
                exp=exp,
                created=updated,
                updated=updated,
                tags=tags,
            )
            world.keyvault.secrets[name.lower()] = SecretEntry(name=name, versions=[version])
    return seeded


@dataclass(frozen=True)
class Measure:
    label: str
    n: int
    list_calls: int
    get_calls: int
    seconds: float
    listed: int


def _measure(world: World, label: str, run: Callable[[], int], repeat: int) -> Measure:
    best: Measure | None = None
    for _ in range(repeat):
        world.reset_calls()
        start = time.perf_counter()
        listed = run()
        seconds = time.perf_counter() - start
        calls = world.calls
        m = Measure(label, 0, calls["keyvault.list_secrets"], calls["keyvault.get_secret"], seconds, listed)
        if best is None or m.seconds < best.seconds:
            best = m
    assert best is not None
    return best


def run(n: int, *, repeat: int = 3, latency_ms: float = 0.0) -> tuple[list[Measure], ScanReport, Seeded]:
    with Emulators.start() as emu:
        seeded = seed(emu.world, n)
        settings = Settings.from_env(emu.env())
        credential = service_credential(settings)
        credential.get_token("https://vault.azure.net/.default")  # both clients start with a token
        store = KeyVaultStore(
            settings.key_vault_url,
            credential,
            ca_bundle=settings.ca_bundle,
            verify_challenge_resource=settings.verify_challenge_resource,
        )
        bare = SecretClient(
            settings.key_vault_url,
            credential,
            verify_challenge_resource=settings.verify_challenge_resource,
            connection_verify=settings.ca_bundle,
        )
        # One call each first, so the challenge round trip is not in either timing.
        next(iter(bare.list_properties_of_secrets(max_page_size=1)))
        next(store.list_properties())
        emu.world.latency_all(latency_ms / 1000.0)
        reports: list[ScanReport] = []

        def scanner() -> int:
            report = scan(store.list_properties(), emu.world.clock.now(), stuck_after=STUCK_AFTER, prefix=PREFIX)
            reports.append(report)
            return report.seen

        def sdk_loop() -> int:
            return sum(1 for _ in bare.list_properties_of_secrets(max_page_size=PAGE_SIZE))

        measures = [
            _measure(emu.world, "scanner: scan(KeyVaultStore.list_properties())", scanner, repeat),
            _measure(emu.world, "bare SDK: list_properties_of_secrets(max_page_size=25)", sdk_loop, repeat),
        ]
        emu.world.latency_all(0)
        bare.close()
        store.client.close()
    return [Measure(m.label, n, m.list_calls, m.get_calls, m.seconds, m.listed) for m in measures], reports[-1], seeded


def table(measures: list[Measure]) -> str:
    header = f"{'':56} {'N':>7} {'list calls':>11} {'get calls':>10} {'seconds':>9}"
    lines = [header, "-" * len(header)]
    for m in measures:
        lines.append(f"{m.label:56} {m.n:>7} {m.list_calls:>11} {m.get_calls:>10} {m.seconds:>9.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="secrets in the vault (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest is shown (default 3)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every emulator request")
    args = parser.parse_args(argv)

    measures, report, seeded = run(args.n, repeat=args.repeat, latency_ms=args.latency_ms)
    scanner, sdk = measures
    expected_calls = math.ceil(args.n / PAGE_SIZE)
    print(f"Key Vault emulator, {args.n} secrets ({seeded.tenants} tenant records), best of {args.repeat}")
    if args.latency_ms:
        print(f"added latency per request: {args.latency_ms:g} ms")
    print()
    print(table(measures))
    print()
    print(f"ceil(N/25) = {expected_calls}; scanner list calls = {scanner.list_calls}, GETs = {scanner.get_calls}")
    print(f"scanner / bare SDK time: {scanner.seconds / sdk.seconds:.2f}x")
    print(report.summary())
    ok = (
        scanner.list_calls == expected_calls
        and scanner.get_calls == 0
        and report.seen == args.n
        and report.tenants == seeded.tenants
        and len(report.items) == seeded.needing_work
    )
    print("OK" if ok else "MISMATCH: see the figures above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
