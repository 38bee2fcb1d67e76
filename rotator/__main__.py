"""``python -m rotator``: the operator CLI."""

from core.telemetry import install_log_context
from rotator.cli import configure_logging, main

if __name__ == "__main__":
    configure_logging()
    install_log_context()  # log lines name the tenant they are about
    raise SystemExit(main())
