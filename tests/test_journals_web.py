"""Journals over HTTP and the CLI: scope, sign-off that seals, amendments, the PDF with
readable Chinese, exports re-read, and `journal verify` catching an edited sealed row."""

from __future__ import annotations

import io
import json

import openpyxl
import pypdf
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from dispatch import calls, centres
from dispatch.accounts import display_name
from dispatch.events import EventBus
from dispatch.settings import Settings
from dispatch.switchboard import Switchboard
from web.cli import main
from web.schema import open_database

from conftest import Cast, bearer, make_token


async def a_finished_meeting(settings: Settings, cast: Cast, client: TestClient) -> int:
    """Town A calls its two villages; one answers, stays, shows video; the other declines."""
    town = bearer(make_token(settings, cast.town_a))
    launched = await (await client.post("/api/v1/calls", headers=town, json={
        "callees": [cast.village_a1, cast.village_a2], "kind": "meeting"})).json()  # fmt: skip
    call_id = launched["call"]["id"]
    tokens = {i["centre"]: bearer(i["join_token"]) for i in launched["invites"]}
    await client.post(f"/api/v1/calls/{call_id}/accept", headers=tokens[cast.village_a1])
    await client.post(f"/api/v1/calls/{call_id}/decline", headers=tokens[cast.village_a2])
    db = open_database(settings.db_url)
    board = Switchboard(db, EventBus(), b"k" * 44)
    for kind, data in (("joined", {}), ("video_live", {}), ("faces_seen", {"faces": 2}),
                       ("verified", {"seconds_live": 75.0, "max_faces": 2}),
                       ("left", {"reason": "left the call", "seconds_live": 80.0})):  # fmt: skip
        await board.record(call_id, kind, cast.village_a1, **data)
    db.close()
    assert (await client.post(f"/api/v1/calls/{call_id}/end", headers=town)).status == 200
    return call_id


async def test_journal_scope_sign_and_amend(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    call_id = await a_finished_meeting(demo_settings, cast, client)
    town = bearer(make_token(demo_settings, cast.town_a))
    village = bearer(make_token(demo_settings, cast.village_a1))
    full = await (await client.get(f"/api/v1/journals/{call_id}", headers=town)).json()
    by_centre = {c["centre"]: c for c in full["centres"]}
    assert by_centre[cast.village_a1]["answer"] == "answered"
    assert by_centre[cast.village_a1]["video_verified"] is True
    assert by_centre[cast.village_a2]["why_not"] == "declined"
    mine = await (await client.get(f"/api/v1/journals/{call_id}", headers=village)).json()
    assert [c["centre"] for c in mine["centres"]] == [cast.village_a1]  # not the other village
    other = bearer(make_token(demo_settings, cast.village_b1))
    assert (await client.get(f"/api/v1/journals/{call_id}", headers=other)).status == 403
    listed = await (await client.get("/api/v1/journals?unsigned=1", headers=village)).json()
    assert [j["call_id"] for j in listed["journals"]] == [call_id]

    # Only the calling side keeps the journal; notes, then the seal.
    resp = await client.post(f"/api/v1/journals/{call_id}/notes", headers=village,
                             json={"notes": "x"})  # fmt: skip
    assert resp.status == 403
    notes = {"agenda": "本周安全形势", "notes": "沿江社区报告宅基地纠纷"}
    resp = await client.post(f"/api/v1/journals/{call_id}/notes", headers=town, json=notes)
    assert resp.status == 200
    sealed = await client.post(f"/api/v1/journals/{call_id}/sign", headers=town)
    assert sealed.status == 201 and (await sealed.json())["seq"] == 1
    resp = await client.post(f"/api/v1/journals/{call_id}/notes", headers=town,
                             json={"notes": "改写"})  # fmt: skip
    assert resp.status == 409
    resp = await client.post(f"/api/v1/journals/{call_id}/amend", headers=town,
                             json={"reason": "笔误", "text": "纠纷涉及三户"})  # fmt: skip
    assert resp.status == 201
    got = await (await client.get(f"/api/v1/journals/{call_id}", headers=town)).json()
    assert got["notes"] == "沿江社区报告宅基地纠纷" and got["amendments"][0]["reason"] == "笔误"
    html = await (await client.get(f"/journals/{call_id}", headers=town)).text()
    assert "调度日志" in html and "沿江社区报告宅基地纠纷" in html

    pdf = await client.get(f"/journals/{call_id}/pdf", headers=town)
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    text_of_pdf = "".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(await pdf.read())).pages
    )
    assert "调度日志" in text_of_pdf and "沿江社区报告宅基地纠纷" in text_of_pdf
    assert any("WenQuanYi" in f or "Noto" in f for f in pdf_fonts(await pdf.read())), (
        "no CJK font embedded: Chinese would print as boxes (make test installs one)"
    )


async def test_the_journal_page_names_centres_and_the_operator(
    client: TestClient, cast: Cast, demo_settings: Settings
) -> None:
    call_id = await a_finished_meeting(demo_settings, cast, client)
    db = open_database(demo_settings.db_url)
    await Switchboard(db, EventBus(), b"k" * 44).record(
        call_id, "snapshot", cast.village_a1, path="shot.jpg", sha256="ab" * 32, why="requested"
    )
    with db.session() as s:
        village = centres.get(s, cast.village_a1).name
        operator = display_name(s, cast.town_a)
    db.close()
    assert village and operator
    town = bearer(make_token(demo_settings, cast.town_a))
    html = await (await client.get(f"/journals/{call_id}", headers=town)).text()
    caption = html.split("<figcaption>", 1)[1].split("</figcaption>", 1)[0]
    assert caption.startswith(f"{village} · 调度员截图"), caption
    assert f"{operator} ({cast.town_a})" in html


def pdf_fonts(data: bytes) -> set[str]:
    """Base names of the fonts a PDF embeds."""
    names = set()
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


async def test_cli_verify_catches_an_edited_sealed_journal(
    client: TestClient,
    cast: Cast,
    demo_settings: Settings,
    tmp_path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    town = bearer(make_token(demo_settings, cast.town_a))
    ids = [await a_finished_meeting(demo_settings, cast, client) for _ in range(3)]
    for call_id in ids:
        assert (await client.post(f"/api/v1/journals/{call_id}/sign", headers=town)).status == 201
    cli = ["--db", demo_settings.db_url]
    assert main([*cli, "journal", "verify"]) == 0
    assert "ok" in capsys.readouterr().out.lower()
    assert main([*cli, "journal", "show", str(ids[0])]) == 0
    assert json.loads(capsys.readouterr().out)["call_id"] == ids[0]

    out = tmp_path / "week.xlsx"
    db = open_database(demo_settings.db_url)
    with db.session() as s:
        created = calls.get_call(s, ids[0]).created_at
    from dispatch.clock import SHANGHAI
    from schedules.workdays import IsoWeek

    week = str(IsoWeek.containing(created.astimezone(SHANGHAI).date()))
    assert (
        main([*cli, "journal", "export", "--week", week, "--format", "xlsx", "-o", str(out)]) == 0
    )
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert "被调度单位" in values and "沿江社区" in values
    pdf = tmp_path / "week.pdf"
    assert main([*cli, "journal", "export", "--week", week, "--format", "pdf", "-o", str(pdf)]) == 0
    assert "调度日志" in pypdf.PdfReader(str(pdf)).pages[0].extract_text()

    # An ordinary UPDATE of a sealed row is refused by the database …
    with pytest.raises(Exception, match=r"read-only|sealed"), db.engine.begin() as conn:
        conn.execute(text("UPDATE journal SET notes = 'x' WHERE call_id = :c"), {"c": ids[1]})
    # … so an attacker drops the trigger first; verify still names the sequence number.
    with db.engine.begin() as conn:
        for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type='trigger'")):
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        conn.execute(text("UPDATE journal SET canonical = replace(canonical, '沿江', '沿河') "
                          "WHERE call_id = :c"), {"c": ids[1]})  # fmt: skip
    db.close()
    capsys.readouterr()
    assert main([*cli, "journal", "verify"]) == 1
    report = capsys.readouterr().out
    assert "seq 2" in report
