"""The nightly scan: list Key Vault once, queue every tenant that is due, stuck or awaiting."""

from __future__ import annotations

import logging

import azure.functions as func

from clients.factory import services
from rotation.operations import scan_and_queue

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("timer")


@bp.function_name("nightly_scan")
@bp.retry(strategy="exponential_backoff", max_retry_count="3", minimum_interval="00:00:30", maximum_interval="00:10:00")
@bp.timer_trigger(schedule="%ROTATION_SCHEDULE%", arg_name="timer", use_monitor=True, run_on_startup=False)
def nightly_scan(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("nightly scan is running late (past due)")
    report = scan_and_queue(services())
    log.info(report.summary())
