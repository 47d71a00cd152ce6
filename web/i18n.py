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
