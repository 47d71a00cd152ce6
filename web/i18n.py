"""UI text in Simplified Chinese (first) and English, and how a request picks one.

Invariant: every key used by a template exists in both languages (a test checks).
"""

from __future__ import annotations

from aiohttp import web

LANGS = ("zh", "en")

MESSAGES: dict[str, tuple[str, str]] = {
    "app.name": ("平安调度", "Pingan Dispatch"),
    "app.tagline": (
        "综治中心视频调度与巡查",
        "Video dispatch and inspection of governance centres",
    ),
    "nav.home": ("首页", "Home"),
    "nav.centres": ("中心架构", "Centres"),
    "nav.rota": ("调度安排", "Rota"),
    "nav.policy": ("调度规则", "Policy"),
    "rota.title": ("调度安排", "Rota"),
    "rota.this_week": ("本周", "This week"),
    "rota.not_built": ("本周调度安排尚未生成。", "This week's rota has not been built yet."),
    "rota.build": ("生成调度安排", "Build the rota"),
    "rota.exempt": ("本周无工作日，免于调度。", "No working day this week: exempt."),
    "rota.unplaced": ("未能安排", "Not placed"),
    "rota.warnings": ("提示", "Warnings"),
    "rota.day": ("日期", "Day"),
    "rota.day_off": ("休息日", "day off"),
    "rota.console": ("坐席", "Console"),
    "rota.and_more": ("等%d个", "+%d more"),
    "rota.hidden": ("抽查·不预告", "spot check · unannounced"),
    "rota.revision": ("版本", "Revision"),
    "rota.slots": ("个时段", "slots"),
    "rota.feed": ("日历订阅", "Calendar feed"),
    "rota.called_in": ("受调度", "Called in"),
    "rota.patrol_weeks": ("各镇巡查安排", "Town patrol weeks"),
    "rota.next_calls": ("我的近期调度", "My next calls"),
    "rota.no_calls": ("近两周没有安排。", "Nothing planned in the next two weeks."),
    "kind.district_meeting": ("区级视频调度会", "District dispatch meeting"),
    "kind.district_inspection": ("区级视频调度", "District inspection"),
    "kind.town_patrol": ("镇级视频巡查", "Town patrol"),
    "kind.screening": ("矛盾纠纷排查调度会", "Dispute screening meeting"),
    "kind.supervision": ("督导调度", "Supervision dispatch"),
    "kind.spot_check": ("视频抽查", "Spot check"),
    "kind.makeup": ("补调度", "Make-up"),
    "status.planned": ("待进行", "planned"),
    "status.held": ("已完成", "held"),
    "status.missed": ("未完成", "missed"),
    "status.cancelled": ("已取消", "cancelled"),
    "slot.time": ("时间", "Time"),
    "slot.caller": ("发起方", "Caller"),
    "slot.callees": ("参加方", "Called"),
    "slot.status": ("状态", "Status"),
    "slot.back": ("返回本周安排", "Back to the week"),
    "live.reminder": ("即将开始", "Starting soon"),
    "live.missed": ("未完成，已安排补调度", "Missed; a make-up is planned"),
    "policy.title": ("调度规则", "Dispatch policy"),
    "policy.for": ("适用于", "Applies to"),
    "policy.default": ("全部（默认）", "All (default)"),
    "policy.save": ("保存", "Save"),
    "policy.mode_meeting": (
        "每镇一次调度会（镇及所辖村）",
        "One meeting per town (town and its villages)",
    ),
    "policy.mode_inspection": ("逐个中心一对一调度", "One 1:1 call per centre"),
    "policy.district_mode": ("区级全覆盖方式", "How the district covers everyone"),
    "policy.district_meeting_minutes": ("区级调度会时长（分钟）", "District meeting (minutes)"),
    "policy.district_inspection_minutes": ("区级一对一时长（分钟）", "District 1:1 (minutes)"),
    "policy.town_patrol_minutes": ("镇级巡查时长（分钟）", "Town patrol (minutes)"),
    "policy.town_patrols_per_week": ("镇级每周巡查次数", "Town patrols per week"),
    "policy.screening_minutes": ("排查调度会时长（分钟）", "Screening meeting (minutes)"),
    "policy.screening_days": ("排查日（每月几号）", "Screening days of the month"),
    "policy.supervision_district_every_months": (
        "区对镇督导间隔（月）",
        "District supervision every (months)",
    ),
    "policy.supervision_town_every_months": (
        "镇对村督导间隔（月）",
        "Town supervision every (months)",
    ),
    "policy.supervision_minutes": ("督导调度时长（分钟）", "Supervision (minutes)"),
    "policy.district_consoles": ("区级坐席数", "District consoles"),
    "policy.town_consoles": ("镇级坐席数", "Town consoles"),
    "policy.windows": ("工作时段", "Working windows"),
    "policy.slot_step_minutes": ("排班粒度（分钟）", "Slot grid (minutes)"),
    "policy.reserve_fraction": ("补调度预留比例", "Make-up reserve (share)"),
    "policy.spot_checks_per_week": ("每周抽查次数", "Spot checks per week"),
    "policy.spot_check_minutes": ("抽查时长（分钟）", "Spot check (minutes)"),
    "policy.answer_deadline_seconds": ("应答时限（秒）", "Answer deadline (seconds)"),
    "policy.min_verified_seconds": ("有效视频最短时长（秒）", "Minimum verified video (seconds)"),
    "policy.reminder_minutes": ("提前提醒（分钟）", "Reminder lead (minutes)"),
    "policy.blackouts": ("不可调度时间", "Blackouts"),
    "policy.bk_weekday": ("每周固定日", "Weekday"),
    "policy.bk_market_days": ("赶场日（尾数）", "Market days (last digits)"),
    "policy.bk_date_range": ("日期范围", "Date range"),
    "policy.overrides": ("工作日调整", "Working-day overrides"),
    "policy.workday": ("工作日", "working day"),
    "policy.day_off": ("休息日", "day off"),
    "policy.note": ("备注", "note"),
    "policy.add": ("添加", "Add"),
    "policy.remove": ("删除", "Remove"),
    "nav.console": ("调度台", "Console"),
    "console.title": ("调度台", "Console"),
    "console.open": ("进行中的调度", "Calls in progress"),
    "console.today": ("今日安排", "Today"),
    "console.launch": ("发起", "Launch"),
    "console.nothing_today": ("今天没有安排。", "Nothing planned today."),
    "call.state.ringing": ("呼叫中", "ringing"),
    "call.state.live": ("进行中", "live"),
    "call.state.ended": ("已结束", "ended"),
    "call.state.interrupted": ("已中断", "interrupted"),
    "kind.inspection": ("视频调度", "Video dispatch"),
    "kind.meeting": ("视频调度会", "Dispatch meeting"),
    "call.title": ("视频调度", "Video call"),
    "call.me": ("本机", "me"),
    "call.floor": ("点名发言", "Give the floor"),
    "call.floor_none": ("收回发言", "Take the floor back"),
    "call.floor_holder": ("发言人", "Speaker"),
    "call.snapshot": ("截图", "Snapshot"),
    "call.end": ("结束调度", "End the call"),
    "call.leave": ("离开", "Leave"),
    "call.accept": ("接听", "Accept"),
    "call.decline": ("拒绝", "Decline"),
    "call.is_calling": ("正在呼叫本中心", "is calling your centre"),
    "call.invite.rang": ("呼叫中", "ringing"),
    "call.invite.answered": ("已接听", "answered"),
    "call.invite.declined": ("已拒绝", "declined"),
    "call.invite.not_answered": ("未接听", "not answered"),
    "nav.logout": ("退出", "Log out"),
    "nav.lang": ("English", "中文"),
    "login.title": ("登录", "Log in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Log in"),
    "login.failed": ("用户名或密码错误", "Wrong username or password"),
    "login.throttled": ("失败次数过多，请稍后再试", "Too many failed attempts; try again later"),
    "login.hint": (
        "演示账号见服务启动时的输出",
        "Demo accounts are printed when the server starts",
    ),
    "role.admin": ("系统管理员", "Administrator"),
    "role.district_operator": ("区综治中心调度员", "District operator"),
    "role.town_operator": ("镇（街道）综治中心调度员", "Town operator"),
    "role.village": ("村（社区）综治中心", "Village centre"),
    "level.district": ("区", "District"),
    "level.town": ("镇/街道", "Town/street"),
    "level.village": ("村/社区", "Village/community"),
    "class.demonstration": ("示范类", "Demonstration"),
    "class.establishing": ("创建类", "Establishing"),
    "class.follow-on": ("带动类", "Follow-on"),
    "home.welcome": ("欢迎", "Welcome"),
    "home.your_centre": ("本中心", "Your centre"),
    "home.below": ("下辖中心", "Centres below"),
    "home.all_centres": ("全部中心", "All centres"),
    "home.open_tree": ("查看中心架构", "Open the centre tree"),
    "home.contacts": ("联系人", "Contacts"),
    "home.no_centres": (
        "数据库中还没有中心。请运行 dispatch demo load 或导入中心。",
        "No centres yet. Run `dispatch demo load` or import centres.",
    ),
    "centre.code": ("统计区划代码", "Area code"),
    "centre.name": ("名称", "Name"),
    "centre.level": ("层级", "Level"),
    "centre.class": ("类别", "Class"),
    "centre.target_year": ("目标年份", "Target year"),
    "centre.director": ("中心主任", "Director"),
    "centre.grid_workers": ("网格员", "Grid workers"),
    "centre.active": ("状态", "Status"),
    "centre.is_active": ("启用", "active"),
    "centre.is_inactive": ("停用", "inactive"),
    "centre.parent": ("上级", "Parent"),
    "centre.children": ("下级中心", "Centres directly below"),
    "centre.none": ("无", "none"),
    "centre.export_csv": ("导出 CSV", "Export CSV"),
    "centre.export_xlsx": ("导出 Excel", "Export Excel"),
    "tree.title": ("中心架构", "Centre tree"),
    "tree.counts": ("统计", "Counts"),
    "tree.total": ("合计", "Total"),
    "tree.inactive": ("停用", "Inactive"),
    "tree.too_big": (
        "下级过多，仅显示直接下级；点击名称查看。",
        "Too many centres to show at once: only the level below is shown; open one to see more.",
    ),
    "error.title": ("出错了", "Something went wrong"),
    "error.forbidden": (
        "无权访问：该中心不在您的管辖范围内。",
        "Not allowed: that centre is outside your scope.",
    ),
    "error.not_found": ("未找到", "Not found"),
    "error.back": ("返回首页", "Back to the home page"),
}


def pick_language(request: web.Request, default: str = "zh") -> str:
    """?lang= wins, then the `lang` cookie, then Accept-Language, then the default."""
    explicit = request.query.get("lang") or request.cookies.get("lang")
    if explicit in LANGS:
        return explicit
    header = request.headers.get("Accept-Language", "")
    best, best_q = None, -1.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best or (default if default in LANGS else "zh")


def translator(lang: str):  # type: ignore[no-untyped-def]
    index = LANGS.index(lang)

    def t(key: str) -> str:
        pair = MESSAGES.get(key)
        return pair[index] if pair else key

    return t
