"""Azure Monitor: where the service's telemetry goes, the way the Functions docs describe for Python
(world-facts §6, [F3]): host.json ``"telemetryMode": "OpenTelemetry"``, the app setting
``PYTHON_ENABLE_OPENTELEMETRY=true``, and ``configure_azure_monitor()`` called by the app.

Off when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is not set (local runs, the tests, the demo):
the metrics API then records into nothing, and logs go where the host or the CLI sends them.

Why the app exports its own log records: the Python worker forwards only a record's message, level
and logger to the host (world-facts §6, [F2]), so ``extra=`` (the tenant, the step) never reaches
Application Insights that way. Our exporter carries them as ``customDimensions``; the message text
names the tenant too (core.telemetry.install_log_context), so the host's copy stays searchable.
The price is that a record can appear twice in ``traces``: query ``customDimensions.tenant`` to
see ours only (docs/deploy.md#monitoring-and-alerts).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from core.telemetry import install_log_context

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
# SDK HTTP chatter (a line per request at INFO, headers included) stays at WARNING.
QUIET_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",
    "azure.monitor.opentelemetry.exporter",
    "msal",
    "httpx",
    "urllib3",
)

log = logging.getLogger("telemetry")
_configured = False


def quiet_sdk_logging() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _entra_credential(env: Mapping[str, str]) -> object | None:
    """Application Insights with local authentication off takes telemetry signed in with Entra: the
    host reads ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (``Authorization=AAD;ClientId=<id>``),
    and the exporter needs the same identity as a credential."""
    raw = env.get(AUTHENTICATION_SETTING, "")
    parts = dict(p.split("=", 1) for p in raw.split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId") or env.get("AZURE_CLIENT_ID") or None
    return ManagedIdentityCredential(client_id=client_id)


def setup(env: Mapping[str, str] | None = None) -> bool:
    """Install the log context and, with a connection string, the Azure Monitor exporters for
    traces, metrics and logs. Returns whether telemetry leaves the process. Safe to call twice."""
    global _configured
    install_log_context()
    quiet_sdk_logging()
    connection = (env if env is not None else os.environ).get(CONNECTION_SETTING, "").strip()
    if not connection or _configured:
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor

    from core.span_context import ContextSpanProcessor  # the SDK: loaded only when exporting

    configure_azure_monitor(
        connection_string=connection,
        credential=_entra_credential(env if env is not None else os.environ),
        span_processors=[ContextSpanProcessor()],
        # The web frameworks the distro instruments are not in this app; azure_sdk, requests and
        # urllib stay on, so every outside call is a dependency span (stamped with the tenant).
        instrumentation_options={name: {"enabled": False} for name in ("django", "flask", "fastapi", "psycopg2")},
    )
    quiet_sdk_logging()  # configure_azure_monitor may reset levels of its own loggers
    _configured = True
    log.info("telemetry exported to Azure Monitor")
    return True
