"""A shorter run of the two-year simulation (python -m bench.simulate runs the full one)."""

from __future__ import annotations

import pytest

from bench.simulate import simulate


@pytest.mark.slow
def test_months_of_unattended_operation_with_faults_break_no_invariant_and_no_secret_expires():
    report = simulate(tenants=9, days=150, fault_rate=0.05, crash_rate=0.2, seed=11, progress=False, lifetimes=(60, 90))

    assert report.breaks == []
    assert report.min_days_left > 0
    assert report.rotations >= 5  # 60- and 90-day secrets rotate more than once in 150 days
    # Every Nylas target lived through it (manual ones too: their operators confirm late).
    assert set(report.rotations_by_target) == {"v3-credential", "v3-connector", "v2-integration", "manual"}
    assert report.faults_injected > 0
    assert report.crashes > 0  # the crashes it plans did happen
    assert report.max_credentials <= 2
    assert report.log_records > 1000 and report.leaks == []  # no secret value in any log record
