"""Journals as rows for the files local offices keep (XLSX, CSV): one row per invited
centre of each call, with the columns of a paper dispatch journal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dispatch.calls import AD_HOC_KIND_LABELS
from dispatch.clock import SHANGHAI
from schedules.slots import KIND_LABELS

from .journal import Journal

ANSWER_ZH = {
    "answered": "已接听",
    "declined": "拒绝",
    "not_answered": "未接听",
    "pending": "待接听",
}
WHY_ZH = {"no answer": "无人接听", "declined": "拒绝", "offline": "接听后未入会", "": ""}
KIND_NAMES = {kind: zh for kind, (zh, _en) in {**KIND_LABELS, **AD_HOC_KIND_LABELS}.items()}

COLUMNS = (
    "调度编号", "日期", "开始", "结束", "调度类型", "发起单位", "操作员", "被调度单位",
    "接听情况", "接听用时(秒)", "未接原因", "入会时段", "有效视频(秒)", "视频核验", "最多在岗人数",
    "截图数", "状态", "签认人", "签认时间", "链序号", "哈希",
)  # fmt: skip


def _local(moment: datetime | None, fmt: str = "%H:%M:%S") -> str:
    return moment.astimezone(SHANGHAI).strftime(fmt) if moment else ""


def journal_rows(journals: list[Journal]) -> list[dict[str, Any]]:
    rows = []
    for j in journals:
        state = (
            "已中断"
            if j.interrupted
            else {"ended": "已结束", "live": "进行中"}.get(j.state, j.state)
        )
        for c in j.centres or ():
            stays = "；".join(f"{_local(i.joined)}–{_local(i.left)}" for i in c.intervals)
            rows.append({
                "调度编号": j.call_id, "日期": _local(j.created_at, "%Y-%m-%d"),
                "开始": _local(j.started_at), "结束": _local(j.ended_at),
                "调度类型": KIND_NAMES.get(j.kind, j.kind), "发起单位": j.caller_name,
                "操作员": j.operator, "被调度单位": c.name,
                "接听情况": ANSWER_ZH.get(c.answer, c.answer),
                "接听用时(秒)": "" if c.seconds_to_answer is None else c.seconds_to_answer,
                "未接原因": WHY_ZH.get(c.why_not, c.why_not), "入会时段": stays,
                "有效视频(秒)": round(c.seconds_verified_video),
                "视频核验": "是" if c.video_verified else "否", "最多在岗人数": c.max_faces,
                "截图数": len(c.snapshots), "状态": state, "签认人": j.signed_by or "",
                "签认时间": _local(j.signed_at, "%Y-%m-%d %H:%M"),
                "链序号": j.seal.seq if j.seal else "", "哈希": j.seal.sha256 if j.seal else "",
            })  # fmt: skip
    return rows
