"""The nightly scan: list Key Vault once, queue every tenant that is due, stuck or awaiting.

Schedule: the app setting ROTATION_SCHEDULE (NCRONTAB, UTC; default ``0 0 2 * * *``, daily
at 02:00). ``use_monitor`` keeps the schedule's last run in storage, so a run missed while the
app was down or redeploying happens once when it comes back (``past_due``). The retry policy
reruns a scan that raised (Key Vault or the queue unavailable) up to 3 times, 30 s to 10 min
apart; a rerun queues some tenants twice, which the engine's due check makes harmless.
"""

from __future__ import annotations

import logging

import azure.functions as func

from bootstrap import services
from core.clock import to_utc
from core.telemetry import flush, telemetry, work_on
from rotation.operations import scan_and_queue

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated
log = logging.getLogger("timer")


@bp.function_name("nightly_scan")
@bp.retry(strategy="exponential_backoff", max_retry_count="3", minimum_interval="00:00:30", maximum_interval="00:10:00")
@bp.timer_trigger(schedule="%ROTATION_SCHEDULE%", arg_name="timer", use_monitor=True, run_on_startup=False)
def nightly_scan(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("nightly scan is running late (past due)")
    svc = services()
    with work_on(step="scan"):
        try:
            # scan_and_queue logs the one summary line with the counts.
            report = scan_and_queue(svc)
        except Exception:
            telemetry().scan(ok=False)
            raise
    # What Azure Monitor's dead-man's switch watches (infra/modules/alerts.bicep): a scan that listed
    # every tenant and queued what was due. Its absence for 26 hours alerts, app or no app.
    now = svc.deps.clock.now()
    telemetry().all_days_left(
        (tenant, target, state, (to_utc(expires) - now).total_seconds() / 86400)
        for tenant, (target, state, expires) in report.expiry.items()
        if expires is not None
    )
    telemetry().scan(ok=True, at=now.timestamp())
    flush()
