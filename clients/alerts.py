"""Alerts to people: a log line always, and a webhook when one is configured.

Kinds: generic JSON, Microsoft Teams (a Workflows webhook carrying an Adaptive
Card) and Slack (an incoming webhook with blocks), chosen by ALERT_WEBHOOK_KIND
(``bootstrap``). Retries are bounded (``max_retries`` more tries, each wait
capped at ``max_wait`` seconds even when the receiver asks for longer) and a
failing webhook never fails a rotation: ``notify`` never raises.

An alert carries names, ids and hints only; the webhook URL itself may embed a
token (Teams and Slack URLs do), so it is never logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from clients.retrying import send_with_retries
from core.clock import Sleep, real_sleep
from core.ports import Alert, Notifier, Severity
from core.telemetry import telemetry

log = logging.getLogger("alerts")
_LEVEL = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING, Severity.CRITICAL: logging.ERROR}


def generic_payload(alert: Alert) -> dict[str, Any]:
    return {
        "source": "nylas-entra-rotator",
        "kind": alert.kind,
        "severity": alert.severity.value,
        "tenant": alert.tenant,
        "summary": alert.summary,
        "action": alert.action,
        "details": dict(alert.details),
    }


_TEAMS_COLOR = {Severity.INFO: "Accent", Severity.WARNING: "Warning", Severity.CRITICAL: "Attention"}


def teams_payload(alert: Alert) -> dict[str, Any]:
    facts = [{"title": "Tenant", "value": alert.tenant}, {"title": "Kind", "value": alert.kind}]
    facts += [{"title": k, "value": v} for k, v in alert.details.items() if v]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "size": "Medium",
                "weight": "Bolder",
                "text": f"[{alert.severity.value.upper()}] {alert.kind}: {alert.tenant}",
                "color": _TEAMS_COLOR[alert.severity],
                "wrap": True,
            },
            {"type": "TextBlock", "text": alert.summary, "wrap": True},
            {"type": "TextBlock", "text": f"**Next:** {alert.action}", "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads <...> as links and mentions: escape the three control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SLACK_TEXT_MAX = 3000  # a section's or context element's text


def slack_payload(alert: Alert) -> dict[str, Any]:
    details = "\n".join(f"• *{_slack_escape(k)}*: {_slack_escape(v)}" for k, v in alert.details.items() if v)
    title = f"[{alert.severity.value.upper()}] {alert.kind}: {alert.tenant}"
    summary = _slack_escape(alert.summary)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary[:SLACK_TEXT_MAX]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*Next:* {_slack_escape(alert.action)}"[:SLACK_TEXT_MAX]},
        },
    ]
    if details:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": details[:SLACK_TEXT_MAX]}]})
    return {"text": f"{_slack_escape(title)}: {summary}", "blocks": blocks}


PAYLOADS = {"generic": generic_payload, "teams": teams_payload, "slack": slack_payload}


class _RedactWebhookPaths(logging.Filter):
    """urllib3 logs each request's path and query at DEBUG; a webhook's are its credential."""

    REDACTED = "/(alert webhook path redacted)"

    def __init__(self) -> None:
        super().__init__()
        self._paths: set[str] = set()
        self._lock = threading.Lock()

    def add(self, url: str) -> None:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if path and path != "/":
            with self._lock:
                self._paths.add(path)

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            for path in self._paths:
                value = value.replace(path, self.REDACTED)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if self._paths:
            record.msg = self._clean(record.msg)
            if isinstance(record.args, tuple):
                record.args = tuple(self._clean(a) for a in record.args)
        return True


_redact = _RedactWebhookPaths()
for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_redact)


class CountedNotifier:
    """Counts every alert by kind (``rotator.alerts``) before handing it to the notifier that sends it."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner

    def notify(self, alert: Alert) -> None:
        telemetry().alert(kind=alert.kind, tenant=alert.tenant)
        self.inner.notify(alert)


class LogNotifier:
    def notify(self, alert: Alert) -> None:
        log.log(
            _LEVEL[alert.severity],
            "alert %s for %s: %s Next: %s",
            alert.kind,
            alert.tenant,
            alert.summary,
            alert.action,
            extra={"tenant": alert.tenant, "alert": alert.kind},
        )


class WebhookNotifier(LogNotifier):
    def __init__(
        self,
        url: str,
        kind: str = "generic",
        *,
        ca_bundle: str = "",
        timeout: float = 10.0,
        max_retries: int = 2,
        max_wait: float = 5.0,
        sleep: Sleep = real_sleep,
    ) -> None:
        if kind not in PAYLOADS:
            raise ValueError(f"alert webhook kind must be one of {', '.join(PAYLOADS)}, got {kind!r}")
        self._url = url
        _redact.add(url)
        self._payload = PAYLOADS[kind]
        self._kind = kind
        self._verify: str | bool = ca_bundle or True
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_wait = max_wait
        self._sleep = sleep

    @property
    def kind(self) -> str:
        return self._kind

    def notify(self, alert: Alert) -> None:
        super().notify(alert)
        extra = {"alert": alert.kind, "tenant": alert.tenant, "webhook_kind": self._kind}
        try:
            body = self._payload(alert)
            response = send_with_retries(
                lambda: requests.post(self._url, json=body, timeout=self._timeout, verify=self._verify),
                max_retries=self._max_retries,
                sleep=lambda seconds: self._sleep(min(seconds, self._max_wait)),
            )
            if response.status_code >= 400:
                log.error("alert webhook answered %s", response.status_code, extra=extra)
        except requests.RequestException as exc:
            # The URL may embed a token (Teams and Slack do): log only the error's class.
            log.error("alert webhook unreachable: %s", exc.__class__.__name__, extra=extra)
        except Exception as exc:  # never let an alert fail the rotation that raised it
            log.error("alert webhook failed: %s", exc.__class__.__name__, extra=extra)
