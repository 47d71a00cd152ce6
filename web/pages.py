"""Server-rendered pages: the home page of each role, the centre tree and a centre's page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlmodel import Session

from dispatch import accounts, centres
from dispatch.centres import Centre, CentreClass, Level
from dispatch.clock import SHANGHAI
from schedules import views

from .appkeys import CLOCK, DB
from .auth import scope_of
from .render import render

# A subtree up to this size is drawn whole; a bigger one shows one level, with links.
TREE_LIMIT = 3000


@dataclass
class Node:
    centre: Centre
    children: list[Node] = field(default_factory=list)
    collapsed: bool = False  # children exist but were not loaded


def _tree(session: Session, root: Centre) -> Node:
    counts = centres.counts_below(session, root.path)
    if counts.total <= TREE_LIMIT:
        rows = centres.all_below(session, root, include_self=True)
        nodes = {c.code: Node(c) for c in rows}
        for c in rows:
            if c.parent_code in nodes and c.code != root.code:
                nodes[c.parent_code].children.append(nodes[c.code])
        return nodes[root.code]
    kids = centres.children(session, root.code)
    return Node(root, [Node(k, collapsed=True) for k in kids])


def _count_table(counts: centres.Counts) -> list[dict[str, Any]]:
    rows = []
    for level in Level:
        per_class = {
            c.value: counts.by_level_class.get((level.value, c.value), 0) for c in CentreClass
        }
        rows.append(
            {"level": level.value, "classes": per_class, "total": counts.by_level[level.value]}
        )
    return rows


async def home(request: web.Request) -> web.Response:
    scope = scope_of(request)
    now = request.app[CLOCK].local()

    def run(s: Session) -> dict[str, Any]:
        centre = centres.get(s, scope.centre_code) if scope.centre_code else None
        counts = centres.counts_below(s, scope.root_path)
        return {
            "centre": centre,
            "parents": centres.path_up(s, centre) if centre else [],
            "children": centres.children(s, centre.code) if centre else centres.roots(s),
            "counts": counts,
            "count_rows": _count_table(counts),
            "next_calls": views.upcoming(s, scope, now),
            "names": _names_for(s, centre),
        }

    return render(request, "home.html", shanghai=SHANGHAI, **await request.app[DB].read(run))


def _names_for(session: Session, centre: Centre | None) -> dict[str, str]:
    """Names of the centre, its ancestors (callers of its calls) and those below it."""
    if centre is None:
        return {}
    rows = [*centres.path_up(session, centre), *centres.all_below(session, centre, True)]
    return {c.code: c.name for c in rows}


async def centre_tree(request: web.Request) -> web.Response:
    scope = scope_of(request)

    def run(s: Session) -> dict[str, Any]:
        if scope.centre_code:
            tops = [centres.get(s, scope.centre_code)]
        else:
            tops = centres.roots(s)
        counts = centres.counts_below(s, scope.root_path)
        big = len(tops) > 1 and counts.total > TREE_LIMIT
        trees = [Node(c, collapsed=True) for c in tops] if big else [_tree(s, c) for c in tops]
        return {
            "trees": trees,
            "counts": counts,
            "count_rows": _count_table(counts),
            "truncated": big or any(n.children and n.children[0].collapsed for n in trees),
        }

    return render(request, "centres.html", **await request.app[DB].read(run))


async def centre_page(request: web.Request) -> web.Response:
    scope = scope_of(request)
    code = request.match_info["code"]

    def run(s: Session) -> dict[str, Any]:
        centre = accounts.get_centre_in_scope(s, scope, code)
        counts = centres.counts_below(s, centre.path)
        tree = _tree(s, centre)
        return {
            "centre": centre,
            "parents": [p for p in centres.path_up(s, centre) if scope.covers(p)],
            "tree": tree,
            "counts": counts,
            "count_rows": _count_table(counts),
            "truncated": bool(tree.children and tree.children[0].collapsed),
        }

    return render(request, "centre.html", **await request.app[DB].read(run))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", home),
        web.get("/centers", centre_tree),
        web.get("/centers/{code}", centre_page),
    ]
