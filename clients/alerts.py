"""Alerts to people: a log line always, and a webhook when one is configured.

Kinds: generic JSON, Microsoft Teams (a Workflows webhook carrying an Adaptive
Card) and Slack (an incoming webhook with blocks). Retries are bounded and a
failing webhook never fails a rotation: ``notify`` never raises.
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from clients.interfaces import Alert, Severity
from clients.retrying import send_with_retries
from core.clock import Sleep, real_sleep

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
                "color": "Attention" if alert.severity is Severity.CRITICAL else "Warning",
                "wrap": True,
            },
            {"type": "TextBlock", "text": alert.summary, "wrap": True},
            {"type": "TextBlock", "text": f"**Next:** {alert.action}", "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def slack_payload(alert: Alert) -> dict[str, Any]:
    details = "\n".join(f"• *{k}*: {v}" for k, v in alert.details.items() if v)
    title = f"[{alert.severity.value.upper()}] {alert.kind}: {alert.tenant}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Next:* {alert.action}"}},
    ]
    if details:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": details}]})
    return {"text": f"{title}: {alert.summary}", "blocks": blocks}


PAYLOADS = {"generic": generic_payload, "teams": teams_payload, "slack": slack_payload}


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
        sleep: Sleep = real_sleep,
    ) -> None:
        self._url = url
        self._payload = PAYLOADS[kind]
        self._kind = kind
        self._verify: str | bool = ca_bundle or True
        self._timeout = timeout
        self._max_retries = max_retries
        self._sleep = sleep

    def notify(self, alert: Alert) -> None:
        super().notify(alert)
        body = self._payload(alert)
        try:
            response = send_with_retries(
                lambda: requests.post(self._url, json=body, timeout=self._timeout, verify=self._verify),
                max_retries=self._max_retries,
                sleep=self._sleep,
            )
            if response.status_code >= 400:
                log.error("alert webhook answered %s", response.status_code, extra={"alert": alert.kind})
        except requests.RequestException as exc:
            # The URL may embed a token (Teams and Slack do): log only the error's class.
            log.error("alert webhook unreachable: %s", exc.__class__.__name__, extra={"alert": alert.kind})
