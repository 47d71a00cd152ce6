"""Printable pages as HTML files and PDF (WeasyPrint), with the CJK font Debian's
fonts-wqy-microhei installs (`make test` installs it): without one, Chinese would print
as blanks, silently — the journal test checks the font is embedded."""

from __future__ import annotations

import jinja2
from weasyprint import HTML

from .i18n import translator
from .render import make_templates

_templates: jinja2.Environment | None = None


def render_html(template: str, **ctx: object) -> str:
    """A template rendered in Chinese, outside any request (files, PDF, the CLI)."""
    global _templates
    if _templates is None:  # one environment per process; templates are read once
        _templates = make_templates()
    return _templates.get_template(template).render(t=translator("zh"), lang="zh", **ctx)


def render_pdf(template: str, **ctx: object) -> bytes:
    """The template printed to PDF. Blocking: run it off the event loop."""
    pdf: bytes = HTML(string=render_html(template, **ctx)).write_pdf()
    return pdf
