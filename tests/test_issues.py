"""The issue ledger (问题台账) and the dispute-screening ledgers, over the demo district.

Scope (a village sees its own issues, a town its villages'), the workflow and its history,
escalation village → town → district with the inboxes and the notification, input that is
refused without writing anything, overdue issues, and the ledgers with their XLSX and CSV
files read back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, SQLModel, func, select

from dispatch import accounts, calls, centres, spreadsheets
from dispatch.clock import today
from dispatch.db import Database
from dispatch.errors import Conflict, InvalidInput, NotAuthorised, NotFound
from dispatch.settings import Settings
from logs import issues, ledgers
from logs.issues import Issue, IssueChange
from web.schema import open_database

from conftest import Cast


@pytest.fixture
def db(demo_settings: Settings) -> Iterator[Database]:
    database = open_database(demo_settings.db_url)
    # web/schema.py does not import logs yet; logs.issues is imported above, so its
    # tables are in the metadata and this creates them.
    SQLModel.metadata.create_all(database.engine)
    yield database
    database.close()


def username(cast: Cast, actor: str) -> str:
    return "admin" if actor == "admin" else cast.all()[actor]


def scope(s: Session, cast: Cast, actor: str) -> accounts.Scope:
    stmt = select(accounts.Account).where(accounts.Account.username == username(cast, actor))
    return accounts.scope_for(s, s.exec(stmt).one())


TODAY = today()  # the real one: the domain functions default to it


def raise_one(s: Session, cast: Cast, actor: str, about: str, **kw: Any) -> issues.Outcome:
    fields: dict[str, Any] = {
        "category": "dispute",
        "severity": "general",
        "parties": "张三、李四",
        "description": "宅基地边界争议",
        "deadline": None,
    } | kw
    return issues.raise_issue(s, scope(s, cast, actor), centre=cast.all()[about], **fields)


def counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        n_issue = s.exec(select(func.count()).select_from(Issue)).one()
        n_change = s.exec(select(func.count()).select_from(IssueChange)).one()
        return n_issue, n_change


# --- scope ---------------------------------------------------------------------------------


def test_a_village_sees_only_its_own_issues_and_a_town_its_villages(
    db: Database, cast: Cast
) -> None:
    with db.session() as s:
        mine = raise_one(s, cast, "village_a1", "village_a1").issue.id or 0
        theirs = raise_one(s, cast, "village_b1", "village_b1").issue.id or 0
        town_own = raise_one(s, cast, "town_a", "town_a").issue.id or 0

    with db.session() as s:
        for actor, visible in {
            "village_a1": {mine},
            "village_a2": set(),
            "town_a": {mine, town_own},
            "town_b": {theirs},
            "district": {mine, theirs, town_own},
            "admin": {mine, theirs, town_own},
        }.items():
            sc = scope(s, cast, actor)
            for issue_id in (mine, theirs, town_own):
                if issue_id in visible:
                    assert issues.get_issue(s, sc, issue_id).id == issue_id
                    assert issues.history(s, sc, issue_id)[0].action == issues.RAISED
                else:
                    with pytest.raises(NotAuthorised):
                        issues.get_issue(s, sc, issue_id)
                    with pytest.raises(NotAuthorised):
                        issues.history(s, sc, issue_id)

        town_a, town_b = scope(s, cast, "town_a"), scope(s, cast, "town_b")
        board_a = issues.board(s, town_a, cast.town_a, today=TODAY)
        assert {i.id for i in board_a} == {mine, town_own}
        assert {i.id for i in issues.board(s, town_a, cast.village_a1, today=TODAY)} == {mine}
        assert {i.id for i in issues.board(s, town_b, cast.town_b, today=TODAY)} == {theirs}
        with pytest.raises(NotAuthorised):
            issues.board(s, town_b, cast.town_a, today=TODAY)
        with pytest.raises(NotAuthorised):
            issues.board(s, scope(s, cast, "village_a1"), cast.town_a, today=TODAY)
        with pytest.raises(NotAuthorised):
            issues.inbox(s, town_b, cast.town_a)
        with pytest.raises(NotFound, match="999999"):
            issues.get_issue(s, town_a, 999_999)

        # Acting needs the holder in scope: another town, a sibling village, and raising
        # about a centre outside the scope are all refused.
        with pytest.raises(NotAuthorised):
            issues.start(s, town_b, mine)
        with pytest.raises(NotAuthorised):
            issues.comment(s, scope(s, cast, "village_a2"), mine, "看一下")
        with pytest.raises(NotAuthorised):
            raise_one(s, cast, "village_a1", "village_a2")
        with pytest.raises(NotAuthorised):
            raise_one(s, cast, "town_a", "village_b1")


# --- workflow ------------------------------------------------------------------------------


def test_open_in_progress_resolved_records_who_when_what(db: Database, cast: Cast) -> None:
    before = datetime.now(UTC)
    with db.session() as s:
        out = raise_one(s, cast, "village_a1", "village_a1", assignee=cast.village_a1)
        issue_id = out.issue.id or 0
        assert out.issue.state == issues.OPEN
        assert out.issue.holder_code == cast.village_a1
        assert [e.name for e in out.events] == ["issue_raised"]
        assert out.events[0].centres == (cast.village_a1,)
    with db.session() as s:
        village = scope(s, cast, "village_a1")
        assert issues.start(s, village, issue_id, "已约双方调解").issue.state == issues.IN_PROGRESS
        with pytest.raises(Conflict, match="not open"):
            issues.start(s, village, issue_id)
        issues.comment(s, village, issue_id, "第一次调解未果")
    with db.session() as s:
        # A general issue is resolved where it is, by the village itself.
        out = issues.resolve(s, scope(s, cast, "village_a1"), issue_id, "双方签订调解协议")
        assert out.issue.state == issues.RESOLVED and out.issue.resolved_at is not None
        assert [e.name for e in out.events] == ["issue_resolved"]
        assert out.events[0].centres == (cast.village_a1,)
    with db.session() as s:
        village = scope(s, cast, "village_a1")
        with pytest.raises(Conflict, match="reopen"):
            issues.resolve(s, village, issue_id, "again")
        with pytest.raises(Conflict, match="reopen"):
            issues.escalate(s, village, issue_id)
        rows = issues.history(s, village, issue_id)
    after = datetime.now(UTC)
    assert [(r.action, r.from_state, r.to_state) for r in rows] == [
        ("raised", None, "open"),
        ("started", "open", "in_progress"),
        ("commented", "in_progress", "in_progress"),
        ("resolved", "in_progress", "resolved"),
    ]
    assert {r.by for r in rows} == {cast.village_a1}
    assert all(before <= r.at <= after for r in rows)
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    assert [r.note for r in rows] == ["", "已约双方调解", "第一次调解未果", "双方签订调解协议"]
    assert rows[0].to_assignee == cast.village_a1

    with db.session() as s:
        town = scope(s, cast, "town_a")
        out = issues.reopen(s, town, issue_id, "协议未履行")
        assert out.issue.state == issues.OPEN and out.issue.resolved_at is None
        with pytest.raises(Conflict, match="not resolved"):
            issues.reopen(s, town, issue_id, "again")
        assert [r.action for r in issues.history(s, town, issue_id)][-1] == "reopened"


def test_a_major_issue_goes_village_to_town_to_district(db: Database, cast: Cast) -> None:
    with db.session() as s:
        out = raise_one(s, cast, "village_a1", "village_a1", severity="major",
                        description="土地征收补偿群体性纠纷")  # fmt: skip
        issue_id = out.issue.id or 0
    with db.session() as s:
        village = scope(s, cast, "village_a1")
        issues.start(s, village, issue_id)
        with pytest.raises(Conflict, match="cannot resolve it; escalate it"):
            issues.resolve(s, village, issue_id, "自行化解")
        assert issues.inbox(s, scope(s, cast, "town_a"), cast.town_a) == []

    with db.session() as s:
        out = issues.escalate(s, scope(s, cast, "village_a1"), issue_id, "重大风险,报镇")
        (event,) = out.events
        assert isinstance(event, issues.IssueEscalated)
        assert (event.from_centre, event.to_centre) == (cast.village_a1, cast.town_a)
        assert event.centres == (cast.town_a,)
        assert event.as_dict()["type"] == "issue_escalated"
        assert (out.issue.holder_code, out.issue.state) == (cast.town_a, issues.OPEN)

    with db.session() as s:
        town = scope(s, cast, "town_a")
        assert [i.id for i in issues.inbox(s, town, cast.town_a)] == [issue_id]
        assert issues.inbox(s, scope(s, cast, "district"), cast.district) == []
        # The village keeps seeing its issue and may add notes, but no longer acts on it.
        village = scope(s, cast, "village_a1")
        assert issues.get_issue(s, village, issue_id).status_zh == "已上报"
        issues.comment(s, village, issue_id, "群众情绪稳定")
        with pytest.raises(NotAuthorised, match="held by"):
            issues.escalate(s, village, issue_id)
        with pytest.raises(NotAuthorised):
            issues.resolve(s, scope(s, cast, "town_b"), issue_id, "x")

    with db.session() as s:
        out = issues.escalate(s, scope(s, cast, "town_a"), issue_id, "报区矛盾纠纷多元化解中心")
        assert out.events[0].centres == (cast.district,)
    with db.session() as s:
        district = scope(s, cast, "district")
        assert [i.id for i in issues.inbox(s, district, cast.district)] == [issue_id]
        assert issues.inbox(s, scope(s, cast, "town_a"), cast.town_a) == []
        with pytest.raises(Conflict, match="cannot be escalated further"):
            issues.escalate(s, district, issue_id)
        issues.assign(s, district, issue_id, cast.town_a, "镇牵头,区司法局配合")
        out = issues.resolve(s, district, issue_id, "召开联席会议,补偿方案落实")
        assert out.events[0].centres == (cast.district, cast.village_a1)
    with db.session() as s:
        assert issues.inbox(s, scope(s, cast, "district"), cast.district) == []
        village = scope(s, cast, "village_a1")
        issue = issues.get_issue(s, village, issue_id)
        assert issue.state == issues.RESOLVED and issue.status_zh == "已化解"
        assert [i.id for i in issues.board(s, village, cast.village_a1, today=TODAY)] == [issue_id]
        rows = issues.history(s, village, issue_id)
    assert [(r.action, r.by, r.from_holder, r.to_holder) for r in rows] == [
        ("raised", cast.village_a1, None, cast.village_a1),
        ("started", cast.village_a1, cast.village_a1, cast.village_a1),
        ("escalated", cast.village_a1, cast.village_a1, cast.town_a),
        ("commented", cast.village_a1, cast.town_a, cast.town_a),
        ("escalated", cast.town_a, cast.town_a, cast.district),
        ("assigned", cast.district, cast.district, cast.district),
        ("resolved", cast.district, cast.district, cast.district),
    ]
    assert rows[2].from_state == issues.IN_PROGRESS and rows[2].to_state == issues.OPEN


def test_a_district_issue_cannot_go_higher_and_a_town_resolves_a_major_one(
    db: Database, cast: Cast
) -> None:
    with db.session() as s:
        district = scope(s, cast, "district")
        own = raise_one(s, cast, "district", "district", severity="major").issue.id or 0
        with pytest.raises(Conflict, match="cannot be escalated further"):
            issues.escalate(s, district, own)
        town_issue = raise_one(s, cast, "town_a", "town_a", severity="major").issue.id or 0
        assert issues.inbox(s, scope(s, cast, "town_a"), cast.town_a) == []  # not escalated
        assert issues.resolve(s, scope(s, cast, "town_a"), town_issue, "镇级化解").issue.state == (
            issues.RESOLVED
        )


def test_a_call_issue_needs_the_caller_or_an_invited_centre(db: Database, cast: Cast) -> None:
    with db.session() as s:
        call = calls.launch(s, scope(s, cast, "district"), [cast.village_a1], kind="inspection",
                            slot_id=None, answer_deadline_seconds=60,
                            min_verified_seconds=60).call  # fmt: skip
        call_id = call.id or 0
    with db.session() as s:
        out = raise_one(s, cast, "village_a1", "village_a1", category="隐患", call_id=call_id)
        assert out.issue.raised_in_call == call_id and out.issue.category == "hazard"
        raise_one(s, cast, "district", "village_a1", call_id=call_id)
        with pytest.raises(InvalidInput) as e:
            raise_one(s, cast, "district", "village_a2", call_id=call_id)
        assert e.value.field == "centre"
        with pytest.raises(NotAuthorised):
            raise_one(s, cast, "village_a2", "village_a2", call_id=call_id)
        with pytest.raises(InvalidInput) as e:
            raise_one(s, cast, "village_a1", "village_a1", call_id=999_999)
        assert e.value.field == "call_id"
        assert len(issues.raised_in(s, scope(s, cast, "village_a1"), call_id)) == 2


# --- refused input writes nothing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("category", {"category": "fight"}),
        ("severity", {"severity": "urgent"}),
        ("description", {"description": "   "}),
        ("deadline", {"deadline": "2026/05/01"}),
        ("deadline", {"deadline": "2026-02-30"}),
        ("deadline", {"deadline": (TODAY - timedelta(days=1)).isoformat()}),
        ("assignee", {"assignee": "village_b1"}),
        ("assignee", {"assignee": "12345"}),
        ("parties", {"parties": "张三\x00"}),
        ("centre", {"about": "nowhere"}),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    db: Database, cast: Cast, field: str, changes: dict[str, Any]
) -> None:
    before = counts(db)
    if changes.get("assignee") == "village_b1":
        changes = {"assignee": cast.village_b1}
    about = changes.pop("about", None)
    with db.session() as s:
        sc = scope(s, cast, "village_a1")
        kw: dict[str, Any] = {"category": "dispute", "severity": "general", "parties": "甲、乙",
                              "description": "噪音扰民", "deadline": None} | changes  # fmt: skip
        with pytest.raises(InvalidInput) as e:
            issues.raise_issue(s, sc, centre=about or cast.village_a1, **kw)
        assert e.value.field == field
        assert not s.new and not s.dirty
    assert counts(db) == before


def test_bad_actions_name_the_field_and_write_nothing(db: Database, cast: Cast) -> None:
    with db.session() as s:
        issue_id = raise_one(s, cast, "village_a1", "village_a1").issue.id or 0
    before = counts(db)
    with db.session() as s:
        village, town = scope(s, cast, "village_a1"), scope(s, cast, "town_a")
        for call, field in [
            (lambda: issues.assign(s, town, issue_id, cast.village_b1), "assignee"),
            (lambda: issues.assign(s, village, issue_id, cast.town_a), "assignee"),
            (lambda: issues.resolve(s, village, issue_id, " "), "note"),
            (lambda: issues.edit(s, village, issue_id, {"deadline": "明天"}), "deadline"),
            (lambda: issues.edit(s, village, issue_id, {"holder_code": cast.town_a}),
             "holder_code"),
            (lambda: issues.board(s, town, cast.town_a, state="done", today=TODAY), "state"),
        ]:  # fmt: skip
            with pytest.raises(InvalidInput) as e:
                call()
            assert e.value.field == field
        assert not s.new and not s.dirty
    assert counts(db) == before


def test_edits_keep_old_values_and_a_village_cannot_downgrade(db: Database, cast: Cast) -> None:
    with db.session() as s:
        issue_id = raise_one(s, cast, "village_a1", "village_a1", severity="重大").issue.id or 0
        village = scope(s, cast, "village_a1")
        new_deadline = TODAY + timedelta(days=10)
        out = issues.edit(s, village, issue_id, {"deadline": new_deadline.isoformat(),
                                                 "parties": "张三、李四、王五"})  # fmt: skip
        assert out.issue.deadline == new_deadline
        assert out.change.note == (
            f"deadline: — → {new_deadline.isoformat()}\nparties: 张三、李四 → 张三、李四、王五"
        )
        with pytest.raises(NotAuthorised, match="cannot lower"):
            issues.edit(s, village, issue_id, {"severity": "general"})
        with pytest.raises(Conflict, match="nothing to change"):
            issues.edit(s, village, issue_id, {"severity": "major"})
        issues.edit(s, scope(s, cast, "town_a"), issue_id, {"severity": "一般"})
        assert issues.resolve(s, village, issue_id, "已化解").issue.state == issues.RESOLVED


# --- overdue -------------------------------------------------------------------------------


def test_overdue_is_open_or_in_progress_past_the_deadline(db: Database, cast: Cast) -> None:
    due = TODAY + timedelta(days=2)
    with db.session() as s:
        late = raise_one(s, cast, "village_a1", "village_a1", deadline=due).issue.id or 0
        done = raise_one(s, cast, "village_a2", "village_a2", deadline=due).issue.id or 0
        raise_one(s, cast, "village_a2", "village_a2")  # no deadline: never overdue
        issues.start(s, scope(s, cast, "village_a1"), late)
        issues.resolve(s, scope(s, cast, "village_a2"), done, "已化解")
    with db.session() as s:
        town = scope(s, cast, "town_a")
        assert issues.board(s, town, cast.town_a, overdue_only=True, today=due) == []
        later = due + timedelta(days=1)
        overdue = issues.board(s, town, cast.town_a, overdue_only=True, today=later)
        assert [i.id for i in overdue] == [late]
        assert overdue[0].overdue(later) and not overdue[0].overdue(due)
        assert overdue[0].as_dict(later)["overdue"] is True
        resolved = issues.board(s, town, cast.town_a, state="resolved", today=later)
        assert [i.id for i in resolved] == [done]
        assert len(issues.board(s, town, cast.town_a, today=later)) == 3


# --- ledgers -------------------------------------------------------------------------------


def backdate(s: Session, issue_id: int, days: int) -> None:
    issue = s.get(Issue, issue_id)
    assert issue is not None
    issue.created_at -= timedelta(days=days)
    s.add(issue)


@pytest.fixture
def screened(db: Database, cast: Cast) -> dict[str, int]:
    """Disputes of town A and its villages in this half-month, and some that are not."""
    ids: dict[str, int] = {}
    with db.session() as s:
        ids["resolved"] = raise_one(s, cast, "village_a1", "village_a1", subcategory="邻里纠纷",
                                    parties="张三、李四", description="排水沟堵塞引发争执",
                                    assignee=cast.village_a1).issue.id or 0  # fmt: skip
        ids["major"] = raise_one(s, cast, "village_a2", "village_a2", severity="major",
                                 parties="村民30余人", description="土地流转租金拖欠",
                                 deadline=TODAY + timedelta(days=5)).issue.id or 0  # fmt: skip
        ids["town"] = raise_one(s, cast, "town_a", "town_a", parties="某建筑公司、农民工",
                                description="工资拖欠", deadline=TODAY + timedelta(days=1),
                                ).issue.id or 0  # fmt: skip
        ids["hazard"] = raise_one(s, cast, "village_a1", "village_a1",
                                  category="hazard").issue.id or 0  # fmt: skip
        ids["other_town"] = raise_one(s, cast, "village_b1", "village_b1").issue.id or 0
        ids["old"] = raise_one(s, cast, "village_a1", "village_a1", parties="赵六、钱七",
                               description="借款纠纷").issue.id or 0  # fmt: skip
    with db.session() as s:
        village, town = scope(s, cast, "village_a1"), scope(s, cast, "town_a")
        issues.resolve(s, village, ids["resolved"], "调解成功,已签协议")
        issues.escalate(s, scope(s, cast, "village_a2"), ids["major"], "涉及人数多,报镇")
        issues.comment(s, town, ids["major"], "镇司法所介入")
        issues.comment(s, village, ids["old"], "双方分歧较大")
        # Raised 20 days ago: before this half-month, and open for more than 15 days.
        backdate(s, ids["old"], 20)
    return ids


def test_the_screening_ledger_of_a_half_month(
    db: Database, cast: Cast, screened: dict[str, int]
) -> None:
    start, end = ledgers.half_month(TODAY)
    with db.session() as s:
        rows = ledgers.screening_ledger(s, scope(s, cast, "town_a"), cast.town_a, start, end)
        below = centres.all_below(s, centres.get(s, cast.district), True)
        names = {c.code: c.name for c in below}
        directors = {c.code: f"{c.director_name} {c.director_phone}".strip() for c in below}
    assert all(tuple(r) == ledgers.SCREENING_COLUMNS for r in rows)
    assert [r["序号"] for r in rows] == [1, 2, 3]
    assert [r["备注"].split(";")[0] for r in rows] == [
        f"问题编号{screened[k]}" for k in ("resolved", "major", "town")
    ]
    first, major, town = rows
    assert first == {
        "序号": 1,
        "排查日期": TODAY.isoformat(),
        "所属村(社区)": names[cast.village_a1],
        "纠纷类别": "邻里纠纷",
        "当事人": "张三、李四",
        "纠纷简要情况": "排水沟堵塞引发争执",
        "风险等级": "一般",
        "化解措施/处理情况": "调解成功,已签协议",
        "责任单位": names[cast.village_a1],
        "责任人": directors[cast.village_a1],  # the unit's director and phone
        "化解时限": "",
        "状态": "已化解",
        "备注": f"问题编号{screened['resolved']}",
    }
    assert (major["风险等级"], major["状态"], major["纠纷类别"]) == ("重大", "已上报", "矛盾纠纷")
    assert major["化解措施/处理情况"] == "镇司法所介入"
    assert major["责任单位"] == names[cast.town_a] and major["责任人"] == directors[cast.town_a]
    assert directors[cast.town_a]  # the demo's directors have names and phones
    assert major["化解时限"] == (TODAY + timedelta(days=5)).isoformat()
    assert f"已上报{names[cast.town_a]}" in major["备注"]
    assert (town["所属村(社区)"], town["状态"]) == (names[cast.town_a], "未化解")

    with db.session() as s:
        district = scope(s, cast, "district")
        assert ledgers.screening_ledger(s, district, cast.town_a, start, end) == rows
        earlier = ledgers.screening_ledger(
            s, district, cast.town_a, TODAY - timedelta(days=25), TODAY - timedelta(days=15)
        )
        assert [r["当事人"] for r in earlier] == ["赵六、钱七"]
        other = ledgers.screening_ledger(s, district, cast.town_b, start, end)
        assert [r["备注"] for r in other] == [f"问题编号{screened['other_town']}"]
        for actor in ("village_a1", "town_b"):
            with pytest.raises(NotAuthorised):
                ledgers.screening_ledger(s, scope(s, cast, actor), cast.town_a, start, end)
        with pytest.raises(InvalidInput) as e:
            ledgers.screening_ledger(s, district, cast.village_a1, start, end)
        assert e.value.field == "town"
        with pytest.raises(InvalidInput) as e:
            ledgers.screening_ledger(s, district, cast.town_a, end, start - timedelta(days=1))
        assert e.value.field == "period_end"
        with pytest.raises(InvalidInput) as e:
            ledgers.screening_ledger(s, district, cast.town_a, "1st of May", end)
        assert e.value.field == "period_start"


def test_the_tracking_ledger_holds_major_old_and_overdue_disputes(
    db: Database, cast: Cast, screened: dict[str, int]
) -> None:
    with db.session() as s:
        town = scope(s, cast, "town_a")
        today_rows = ledgers.tracking_ledger(s, town, cast.town_a, TODAY)
        later_rows = ledgers.tracking_ledger(s, town, cast.town_a, TODAY + timedelta(days=2))
        shown = {a.username: a.display_name for a in s.exec(select(accounts.Account))}
    assert all(tuple(r) == ledgers.TRACKING_COLUMNS for r in today_rows + later_rows)

    def ids(rows: list[dict[str, Any]]) -> list[int]:
        return [int(r["备注"].split(";")[0].removeprefix("问题编号")) for r in rows]

    # Oldest first; the resolved one, the hazard and the other town's never appear.
    assert ids(today_rows) == [screened["old"], screened["major"]]
    assert ids(later_rows) == [screened["old"], screened["major"], screened["town"]]
    old, major = today_rows
    assert old["关注原因"] == "超过15天未化解(已20天)"
    assert major["关注原因"] == "重大矛盾纠纷"
    assert later_rows[2]["关注原因"] == f"已逾期(时限{(TODAY + timedelta(days=1)).isoformat()})"
    notes = major["跟踪记录"].split("\n")
    # "YYYY-MM-DD HH:MM 动作(经办人): 说明", the account's display name for who.
    assert notes[0].split(" ", 2)[2] == f"登记({shown[cast.village_a2]})"
    assert notes[1].endswith(f"({shown[cast.village_a2]}): 涉及人数多,报镇")
    assert "上报" in notes[1] and "→" in notes[1]
    assert notes[2].endswith(f"跟踪记录({shown[cast.town_a]}): 镇司法所介入")
    assert old["跟踪记录"].endswith("双方分歧较大")


# --- files ---------------------------------------------------------------------------------


def test_ledger_xlsx_reads_back_the_same_values(
    db: Database, cast: Cast, screened: dict[str, int]
) -> None:
    with db.session() as s:
        town = scope(s, cast, "town_a")
        rows = ledgers.tracking_ledger(s, town, cast.town_a, TODAY)
        data = ledgers.tracking_file(s, town, cast.town_a, TODAY, "xlsx")
        empty = ledgers.screening_file(s, town, cast.town_a, date(2020, 1, 1), date(2020, 1, 15),
                                       "xlsx")  # fmt: skip
        with pytest.raises(InvalidInput) as e:
            ledgers.tracking_file(s, town, cast.town_a, TODAY, "pdf")
        assert e.value.field == "format"

    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames == [ledgers.TRACKING_SHEET]
    ws = wb[ledgers.TRACKING_SHEET]
    assert str(ws["A1"].value).endswith(f"重点关注持续跟踪矛盾纠纷台账(截至{TODAY.isoformat()})")
    n = len(ledgers.TRACKING_COLUMNS)
    assert [str(r) for r in ws.merged_cells.ranges] == [f"A1:{chr(ord('A') + n - 1)}1"]
    header = [c.value for c in ws[2]]
    assert header == list(ledgers.TRACKING_COLUMNS)
    assert all(c.font.bold for c in ws[2])
    back = [["" if v is None else v for v in r] for r in ws.iter_rows(min_row=3, values_only=True)]
    assert back == [list(r.values()) for r in rows]
    assert ws.cell(row=3, column=2).data_type == "s"  # the date stays text
    assert ws.column_dimensions["F"].width > ws.column_dimensions["A"].width

    wb = load_workbook(io.BytesIO(empty))
    ws = wb[ledgers.SCREENING_SHEET]
    assert [c.value for c in ws[2]] == list(ledgers.SCREENING_COLUMNS) and ws.max_row == 2

    # Codes, numeric-looking text and formulas stay text; numbers stay numbers.
    odd = [{"代码": cast.village_a1, "日期": "2026-05-01", "公式": "=1+1", "数": 3}]
    ws = load_workbook(io.BytesIO(spreadsheets.xlsx_ledger(odd, "测试", sheet="测试:台账"))).active
    assert ws is not None and ws.title == "测试台账"
    assert [c.value for c in ws[3]] == [cast.village_a1, "2026-05-01", "=1+1", 3]
    assert [c.data_type for c in ws[3]] == ["s", "s", "s", "n"]
    assert ws.cell(row=3, column=1).number_format == "@"


def test_ledger_csv_has_a_bom_and_the_columns(
    db: Database, cast: Cast, screened: dict[str, int]
) -> None:
    start, end = ledgers.half_month(TODAY)
    with db.session() as s:
        town = scope(s, cast, "town_a")
        rows = ledgers.screening_ledger(s, town, cast.town_a, start, end)
        data = ledgers.screening_file(s, town, cast.town_a, start, end, "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    back = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert back[0] == list(ledgers.SCREENING_COLUMNS)
    assert back[1:] == [[str(v) for v in r.values()] for r in rows]
    assert spreadsheets.csv_file([], ledgers.TRACKING_COLUMNS).decode("utf-8-sig") == (
        ",".join(ledgers.TRACKING_COLUMNS) + "\r\n"
    )


def test_half_month_periods() -> None:
    assert ledgers.half_month(date(2026, 2, 15)) == (date(2026, 2, 1), date(2026, 2, 15))
    assert ledgers.half_month(date(2026, 2, 16)) == (date(2026, 2, 16), date(2026, 2, 28))
    assert ledgers.half_month(date(2024, 2, 29)) == (date(2024, 2, 16), date(2024, 2, 29))
