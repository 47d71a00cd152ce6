"""Server-rendered pages: the Jinja environment and the one function that renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from dispatch.wording import callees_text
from logs.bulletin import bulletin

from .appkeys import ACCOUNT, CLOCK, CSRF, SCOPE, SETTINGS, TEMPLATES
from .i18n import pick_language, translator

TEMPLATE_DIR = Path(__file__).parent / "templates"


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bilingual"] = bilingual
    env.globals["callees_text"] = callees_text
    env.globals["bulletin"] = bulletin  # (report, as_of, lang): the office's bulletin
    return env


def bilingual(text: str, lang: str) -> str:
    """The part of a "中文 / English" message (rota warnings and reasons) in `lang`."""
    zh, sep, en = text.partition(" / ")
    return (zh if lang == "zh" else en) if sep else text


def language(request: web.Request) -> str:
    return pick_language(request, request.app[SETTINGS].default_lang)


def render(request: web.Request, name: str, status: int = 200, **ctx: Any) -> web.Response:
    lang = language(request)
    env = request.app[TEMPLATES]
    body = env.get_template(name).render(
        t=translator(lang),
        lang=lang,
        other_lang="en" if lang == "zh" else "zh",
        path=request.path,
        scope=request.get(SCOPE),
        account=request.get(ACCOUNT),
        csrf=request.get(CSRF, ""),
        as_of=request.app[CLOCK].today(),  # the day a page is issued (a report's bulletin)
        **ctx,
    )
    resp = web.Response(text=body, content_type="text/html", status=status)
    if request.query.get("lang") in ("zh", "en"):
        resp.set_cookie("lang", request.query["lang"], max_age=365 * 86400, samesite="Lax")
    resp.headers["Content-Language"] = "zh-CN" if lang == "zh" else "en"
    return resp


def render_error(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message)
