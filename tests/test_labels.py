"""One label table per fact (issue 14 item 4): every miss reason has its Chinese and
English label in logs.coverage.REASON_LABELS, and the pages, the files and the monthly
narrative all read that one table."""

from __future__ import annotations

from logs import bulletin, coverage
from web import i18n


def test_every_miss_reason_has_both_labels_once() -> None:
    assert set(coverage.REASON_LABELS) == set(coverage.REASONS)
    for reason, (chinese, english) in coverage.REASON_LABELS.items():
        assert chinese and english and chinese != english, reason
        assert i18n.MESSAGES[f"report.reason.{reason}"] == (chinese, english)
        assert bulletin._reason(reason, zh=True) == chinese
        assert bulletin._reason(reason, zh=False) == english.lower()
