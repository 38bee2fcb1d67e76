"""Run the emulators from a shell: ``python -m emulators --help``."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading

from .server import Emulators


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emulators",
        description=(
            "Local HTTPS emulators of Microsoft Entra ID (token endpoint, user sign-in), Microsoft Graph v1.0 "
            "(applications, passwords, service principals), Azure Key Vault secrets and Nylas (v3 connector, "
            "credentials and hosted auth; v2 integration), "
            "sharing one world. A throw-away CA is generated at start; point clients at the printed CA bundle. "
            "Steer the world through the control URL (see docs/emulators.md)."
        ),
        epilog="Example: python -m emulators --port-base 8440 --propagation-delay 5 --env-file .emulators.env",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind and to put in URLs (default 127.0.0.1)")
    parser.add_argument(
        "--port-base",
        type=int,
        default=0,
        metavar="N",
        help="ports N..N+4 for entra, graph, keyvault, nylas, control; 0 = free ports (default)",
    )
    parser.add_argument(
        "--propagation-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds before a new client secret is accepted by the token endpoint (AADSTS7000215)",
    )
    parser.add_argument(
        "--replication-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds a new Graph application answers 404 to keyed reads and addPassword",
    )
    parser.add_argument(
        "--lifetime-policy-days",
        type=int,
        default=None,
        metavar="N",
        help="tenant app-management policy: refuse passwords living longer than N days",
    )
    parser.add_argument(
        "--no-purge-protection",
        action="store_true",
        help="allow purging soft-deleted secrets (purge protection is on by default)",
    )
    parser.add_argument(
        "--seed-nylas-demo",
        action="store_true",
        help="register a demo Nylas v3 app (demo-v3-app / demo-v3-api-key) and v2 app "
        "(demo-v2-client / demo-v2-secret), both in region us",
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="also write the settings as NAME=value lines to PATH (e.g. for local.settings)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    emu = Emulators.start(
        host=args.host,
        graph_replication_delay=args.replication_delay,
        propagation_delay=args.propagation_delay,
        port_base=args.port_base,
        lifetime_policy_days=args.lifetime_policy_days,
        purge_protection=not args.no_purge_protection,
    )
    if args.seed_nylas_demo:
        emu.world.nylas.add_v3_app("demo-v3-app", "demo-v3-api-key")
        emu.world.nylas.add_v2_app("demo-v2-client", "demo-v2-secret")
    env = emu.env()
    print("Emulators running (Ctrl-C to stop):")
    for name, url in emu.urls.items():
        print(f"  {name:<9} {url}")
    print(f"  CA bundle {emu.ca_path}")
    print()
    # The service identity's secret is a local-only value of this emulator run; printing it is intended.
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    sys.stdout.flush()
    if args.env_file:
        # Written whole, then renamed: a harness waiting for the file never reads half of it.
        partial = f"{args.env_file}.partial"
        with open(partial, "w", encoding="utf-8") as fh:
            # The control URL is not a service setting: a comment that harnesses can read.
            fh.write(f"# control={emu.urls['control']}\n")
            fh.writelines(f"{name}={value}\n" for name, value in env.items())
        os.replace(partial, args.env_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
