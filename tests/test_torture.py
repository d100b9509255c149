"""A short concurrency torture run in the suite; the long one is `make torture`.

See tests/torture.py for what the workers do and what is checked afterwards.
"""

from __future__ import annotations

import os

import torture

SECONDS = float(os.environ.get("MEDBOOK_TORTURE_SECONDS", "20"))
WORKERS = 6


def test_hot_slots_survive_many_processes(db: str):
    report = torture.run(db, seconds=SECONDS, workers=WORKERS)
    print(report.summary())
    assert report.unexpected == []
    assert report.violations == []
    assert report.ledger_mismatches == []
    assert report.deadlocks == 0
    assert report.log_alarms == []
    # The run must have contended, or it proved nothing.
    for outcome in ["book ok", "book MBS01", "cancel ok", "update ok", "update MBS03",
                    "delete ok", "create ok", "create MBS02", "bulk ok", "bulk MBS02", "publish ok",
                    "slots published", "time_off ok", "slots removed by time off", "end_time_off ok",
                    "range_delete ok", "slots deleted by range",
                    "reschedule ok", "reschedule MBS01", "attend ok", "keyed ok", "keyed replayed", "keyed MBI01"]:
        assert report.counts[outcome] > 0, (outcome, report.counts)
    assert report.operations > 20 * SECONDS
