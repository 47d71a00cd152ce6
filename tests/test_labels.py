"""One label table per enum (issue 14 item 4): every value of every enum the pages,
files and reports name has its Chinese and English label in the one table beside the
enum, and the readers (the pages' messages, the ledgers, the journal files, the monthly
narrative) all say those labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from dispatch import accounts, calls, centres
from logs import bulletin, coverage, exports, issues, periods
from schedules import plans, slots
from web import i18n

# (what, every value, its label table, the page messages' key prefix)
TABLES: list[tuple[str, Iterable[str], Mapping[str, tuple[str, str]], str]] = [
    ("centre level", list(centres.Level), centres.LEVEL_LABELS, "level."),
    ("centre class", list(centres.CentreClass), centres.CLASS_LABELS, "class."),
    ("role", list(accounts.Role), accounts.ROLE_LABELS, "role."),
    ("call state", calls.STATES, calls.STATE_LABELS, "call.state."),
    ("ad-hoc call kind", calls.AD_HOC_KINDS, calls.AD_HOC_KIND_LABELS, "kind."),
    ("rota call kind", slots.KINDS, slots.KIND_LABELS, "kind."),
    ("slot status", plans.STATUSES, plans.STATUS_LABELS, "status."),
    ("issue category", list(issues.Category), issues.CATEGORY_LABELS, "issues.cat."),
    ("issue severity", list(issues.Severity), issues.SEVERITY_LABELS, "issues.sev."),
    ("issue state", issues.STATES, issues.STATE_LABELS, "issues.state."),
    ("issue step", issues.ACTIONS, issues.ACTION_LABELS, "issues.did."),
    ("miss reason", coverage.REASONS, coverage.REASON_LABELS, "report.reason."),
]


@pytest.mark.parametrize(("what", "values", "labels", "prefix"), TABLES, ids=[t[0] for t in TABLES])
def test_every_value_has_both_labels_and_the_pages_say_them(
    what: str, values: Iterable[str], labels: Mapping[str, tuple[str, str]], prefix: str
) -> None:
    values = [str(v) for v in values]
    assert sorted(str(v) for v in labels) == sorted(values), what
    for value, (chinese, english) in labels.items():
        assert chinese and english and chinese != english, (what, value)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese), (what, value)
        assert english.isascii(), (what, value)
        assert i18n.MESSAGES[f"{prefix}{value}"] == (chinese, english), (what, value)


def test_no_two_kinds_of_call_share_a_key() -> None:
    assert not set(calls.AD_HOC_KINDS) & set(slots.KINDS)


def test_the_files_and_the_narratives_read_the_same_tables() -> None:
    for reason, (chinese, english) in coverage.REASON_LABELS.items():
        assert bulletin._reason(reason, zh=True) == chinese
        assert bulletin._reason(reason, zh=False) == english.lower()
    for kind, (chinese, _english) in {**slots.KIND_LABELS, **calls.AD_HOC_KIND_LABELS}.items():
        assert exports.KIND_NAMES[kind] == chinese
    for cls, (chinese, english) in centres.CLASS_LABELS.items():
        assert cls.zh == chinese
        assert periods._class_en(cls.value) == english.lower()
    for category, (chinese, _english) in issues.CATEGORY_LABELS.items():
        assert category.zh == chinese and issues.CATEGORY_ALIASES[chinese] == category
    for severity, (chinese, _english) in issues.SEVERITY_LABELS.items():
        assert severity.zh == chinese
