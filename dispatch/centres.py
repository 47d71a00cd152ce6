"""Governance centres (综治中心) and their hierarchy: district → town/street → village/community.

Invariant: `path` is the codes from the root down to this centre, each followed by
"/" (e.g. "511703000000/511703100000/"). Everything below a centre is the
contiguous index range [path, path[:-1] + "0"), because "/" sorts just below "0";
so "all below", "counts below" and scope checks are one indexed range scan at any scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, func
from sqlmodel import Field, Session, SQLModel, col, select

from .clock import utcnow
from .errors import InvalidInput, NotFound


class Level(StrEnum):
    district = "district"
    town = "town"
    village = "village"

    @property
    def parent_level(self) -> Level | None:
        return {Level.district: None, Level.town: Level.district, Level.village: Level.town}[self]



class CentreClass(StrEnum):
    """The seed's three classes; each has the year by which it must run for real."""

    demonstration = "demonstration"  # 示范类
    establishing = "establishing"  # 创建类
    follow_on = "follow-on"  # 带动类

    @property
    def zh(self) -> str:
        return CLASS_LABELS[self][0]

    @property
    def default_target_year(self) -> int:
        return {"demonstration": 2022, "establishing": 2023, "follow-on": 2024}[self.value]


# What pages, files and reports call each level and class (Chinese, English).
LEVEL_LABELS: dict[Level, tuple[str, str]] = {
    Level.district: ("区", "District"),
    Level.town: ("镇/街道", "Town/street"),
    Level.village: ("村/社区", "Village/community"),
}
CLASS_LABELS: dict[CentreClass, tuple[str, str]] = {
    CentreClass.demonstration: ("示范类", "Demonstration"),
    CentreClass.establishing: ("创建类", "Establishing"),
    CentreClass.follow_on: ("带动类", "Follow-on"),
}

LEVEL_ALIASES: dict[str, Level] = {
    "district": Level.district,
    "区": Level.district,
    "县": Level.district,
    "town": Level.town,
    "street": Level.town,
    "镇": Level.town,
    "乡": Level.town,
    "街道": Level.town,
    "village": Level.village,
    "community": Level.village,
    "村": Level.village,
    "社区": Level.village,
    "镇/街道": Level.town,  # the labels the UI shows
    "村/社区": Level.village,
}
CLASS_ALIASES: dict[str, CentreClass] = {
    "demonstration": CentreClass.demonstration,
    "示范类": CentreClass.demonstration,
    "establishing": CentreClass.establishing,
    "创建类": CentreClass.establishing,
    "follow-on": CentreClass.follow_on,
    "带动类": CentreClass.follow_on,
}
CODE_RE = re.compile(r"^\d{12}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-]{4,18}$")  # at most 20 characters
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Centre(SQLModel, table=True):
    # Covers counts by level and class, over a subtree's path range or the whole table,
    # without reading the rows.
    __table_args__ = (Index("ix_centre_path_counts", "path", "level", "centre_class", "active"),)

    code: str = Field(primary_key=True, max_length=12)
    name: str = Field(max_length=100)
    level: str = Field(index=True, max_length=10)
    parent_code: str | None = Field(default=None, foreign_key="centre.code", index=True)
    # Byte order ("C") on PostgreSQL too: a locale collation may ignore "/" and break
    # the range-scan invariant above.
    path: str = Field(
        sa_column=Column(
            String(40).with_variant(String(40, collation="C"), "postgresql"),
            unique=True,
            index=True,
            nullable=False,
        )
    )
    centre_class: str = Field(max_length=16)
    target_year: int
    director_name: str = Field(default="", max_length=50)
    director_phone: str = Field(default="", max_length=20)
    # [{"name": ..., "phone": ...}], in the order the centre gave them.
    grid_workers: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON))
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def depth(self) -> int:
        return self.path.count("/") - 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "parent": self.parent_code,
            "class": self.centre_class,
            "target_year": self.target_year,
            "director": {"name": self.director_name, "phone": self.director_phone},
            "grid_workers": list(self.grid_workers),
            "active": self.active,
        }


def below_range(path: str) -> tuple[str, str]:
    """The [low, high) path range holding a centre and everything below it."""
    return path, path[:-1] + "0"


def in_subtree(root_path: str, path: str) -> bool:
    return path.startswith(root_path)


# --- validation shared by the API, the CLI and the importer -------------------------


def parse_code(value: str, field: str = "code") -> str:
    value = (value or "").strip()
    if not CODE_RE.match(value):
        raise InvalidInput(field, f"must be a 12-digit statistical area code, got {value!r}")
    return value


def parse_level(value: str, field: str = "level") -> Level:
    key = (value or "").strip().lower()
    if key not in LEVEL_ALIASES:
        raise InvalidInput(field, f"unknown level {value!r}: use district, town or village")
    return LEVEL_ALIASES[key]


def parse_class(value: str, field: str = "class") -> CentreClass:
    key = (value or "").strip().lower()
    if key not in CLASS_ALIASES:
        raise InvalidInput(
            field, f"unknown class {value!r}: use demonstration, establishing or follow-on"
        )
    return CLASS_ALIASES[key]


def parse_year(value: str | int | None, cls: CentreClass, field: str = "target_year") -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return cls.default_target_year
    try:
        year = int(str(value).strip())
    except ValueError:
        raise InvalidInput(field, f"must be a year, got {value!r}") from None
    if not 2000 <= year <= 2100:
        raise InvalidInput(field, f"year {year} is outside 2000–2100")
    return year


def parse_phone(value: str, field: str) -> str:
    value = (value or "").strip()
    if value and not PHONE_RE.match(value):
        raise InvalidInput(field, f"not a phone number: {value!r}")
    return value


def parse_name(value: str, field: str = "name") -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > 100:
        raise InvalidInput(field, "longer than 100 characters")
    if CONTROL_RE.search(value):
        raise InvalidInput(field, "contains a control character")
    return value


def parse_grid_workers(value: Any, field: str = "grid_workers") -> list[dict[str, str]]:
    """Accept a list of {name, phone} or the file form "张三:138…;李四:139…"."""
    items: list[tuple[str, str]] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidInput(field, f"item {i + 1} must be an object with a name")
            items.append((item["name"], str(item.get("phone", ""))))
    elif isinstance(value, str):
        for part in filter(None, (p.strip() for p in value.split(";"))):
            name, _, phone = part.partition(":")
            items.append((name, phone))
    elif value is not None:
        raise InvalidInput(field, "must be a list of {name, phone}")
    out = []
    for name, phone in items:
        name = name.strip()
        if not name:
            raise InvalidInput(field, "a grid worker has no name")
        # ":" and ";" separate workers in the file form; a name holding them would not
        # survive an export and import.
        if any(ch in name for ch in ":;") or CONTROL_RE.search(name) or len(name) > 50:
            raise InvalidInput(
                field,
                f"grid worker name {name!r}: no ':' ';' or control "
                "characters, at most 50 characters",
            )
        out.append({"name": name, "phone": parse_phone(phone, field)})
    return out


def format_grid_workers(workers: list[dict[str, str]]) -> str:
    return ";".join(f"{w['name']}:{w['phone']}" if w.get("phone") else w["name"] for w in workers)


# --- tree queries -------------------------------------------------------------------


def get(session: Session, code: str) -> Centre:
    centre = session.get(Centre, code)
    if centre is None:
        raise NotFound("centre", code)
    return centre


def get_at_level(session: Session, code: str, level: Level, field: str) -> Centre:
    """The centre by code, which must be of `level`; errors name `field`."""
    centre = get(session, parse_code(code, field))
    if centre.level != level.value:
        raise InvalidInput(field, f"{code} is a {centre.level}, not a {level.value}")
    return centre


def roots(session: Session) -> list[Centre]:
    return list(
        session.exec(select(Centre).where(col(Centre.parent_code).is_(None)).order_by(Centre.code))
    )


def children(session: Session, code: str) -> list[Centre]:
    stmt = select(Centre).where(Centre.parent_code == code).order_by(Centre.code)
    return list(session.exec(stmt))


def all_below(session: Session, centre: Centre, include_self: bool = False) -> list[Centre]:
    low, high = below_range(centre.path)
    stmt = select(Centre).where(Centre.path >= low, Centre.path < high).order_by(Centre.path)
    rows = list(session.exec(stmt))
    return rows if include_self else [c for c in rows if c.code != centre.code]


def path_up(session: Session, centre: Centre) -> list[Centre]:
    """The centre's ancestors, root first, without the centre itself."""
    codes = centre.path.rstrip("/").split("/")[:-1]
    if not codes:
        return []
    found = {c.code: c for c in session.exec(select(Centre).where(col(Centre.code).in_(codes)))}
    return [found[c] for c in codes if c in found]


@dataclass(frozen=True)
class Counts:
    """How many centres lie in a subtree, by level and by class (the centre itself included)."""

    by_level: dict[str, int]
    by_class: dict[str, int]
    by_level_class: dict[tuple[str, str], int]
    inactive: int

    @property
    def total(self) -> int:
        return sum(self.by_level.values())


def counts_below(session: Session, path: str | None) -> Counts:
    """Counts over the subtree at `path`, or over everything when `path` is None."""
    stmt = select(Centre.level, Centre.centre_class, Centre.active, func.count()).group_by(
        col(Centre.level), col(Centre.centre_class), col(Centre.active)
    )
    if path is not None:
        low, high = below_range(path)
        stmt = stmt.where(Centre.path >= low, Centre.path < high)
    by_level: dict[str, int] = {lv.value: 0 for lv in Level}
    by_class: dict[str, int] = {c.value: 0 for c in CentreClass}
    by_lc: dict[tuple[str, str], int] = {}
    inactive = 0
    for level, cls, active, n in session.exec(stmt):
        by_level[level] = by_level.get(level, 0) + n
        by_class[cls] = by_class.get(cls, 0) + n
        by_lc[(level, cls)] = by_lc.get((level, cls), 0) + n
        if not active:
            inactive += n
    return Counts(by_level, by_class, by_lc, inactive)


def search(
    session: Session,
    under_path: str | None,
    *,
    level: Level | None = None,
    query: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Centre], int]:
    """A page of centres in a subtree (or everywhere), with the total that matched."""
    conds: list[Any] = []
    if under_path is not None:
        low, high = below_range(under_path)
        conds += [Centre.path >= low, Centre.path < high]
    if level is not None:
        conds.append(Centre.level == level.value)
    if query:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(
            col(Centre.name).like(like, escape="\\") | col(Centre.code).like(like, escape="\\")
        )
    total = session.exec(select(func.count()).select_from(Centre).where(*conds)).one()
    stmt = select(Centre).where(*conds).order_by(Centre.path).offset(offset).limit(limit)
    return list(session.exec(stmt)), int(total)


# Fields of a centre that its own account may change, and those only its superiors may.
CONTACT_FIELDS = frozenset({"director", "grid_workers"})
MANAGED_FIELDS = frozenset({"name", "class", "target_year", "active"})
EDITABLE = CONTACT_FIELDS | MANAGED_FIELDS


def update(session: Session, centre: Centre, changes: dict[str, Any]) -> Centre:
    """Apply validated field changes; structure (code, level, parent) changes only by import."""
    unknown = sorted(set(changes) - EDITABLE)
    if unknown:
        raise InvalidInput(unknown[0], f"unknown or read-only field; editable: {sorted(EDITABLE)}")
    if "name" in changes:
        centre.name = parse_name(changes["name"])
    if "class" in changes:
        cls = parse_class(changes["class"])
        centre.centre_class = cls.value
        if "target_year" not in changes:
            centre.target_year = cls.default_target_year
    if "target_year" in changes:
        centre.target_year = parse_year(changes["target_year"], CentreClass(centre.centre_class))
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise InvalidInput("active", "must be true or false")
        centre.active = changes["active"]
    if "director" in changes:
        d = changes["director"]
        if not isinstance(d, dict):
            raise InvalidInput("director", "must be an object with name and phone")
        name = str(d.get("name", "")).strip()
        if len(name) > 50 or CONTROL_RE.search(name):
            raise InvalidInput("director.name", "at most 50 characters, no control characters")
        centre.director_name = name
        centre.director_phone = parse_phone(str(d.get("phone", "")), "director.phone")
    if "grid_workers" in changes:
        centre.grid_workers = parse_grid_workers(changes["grid_workers"])
    centre.updated_at = utcnow()
    session.add(centre)
    return centre
