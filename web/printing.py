"""Printable pages as PDF (WeasyPrint), with the CJK font Debian's fonts-wqy-microhei
installs (`make test` and `make serve` install it): without one, Chinese would print
as blanks, silently."""

from __future__ import annotations

import jinja2
from weasyprint import HTML

from .i18n import translator
from .render import make_templates

_templates: jinja2.Environment | None = None


def render_pdf(template: str, **ctx: object) -> bytes:
    """The template rendered in Chinese and printed to PDF. Blocking: run off the loop."""
    global _templates
    if _templates is None:  # one environment per process; templates are read once
        _templates = make_templates()
    html = _templates.get_template(template).render(t=translator("zh"), lang="zh", **ctx)
    return HTML(string=html).write_pdf()  # type: ignore[no-any-return]
