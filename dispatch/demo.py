"""Demo data: the 达川区 district (≈300 centres) or a synthetic province (≈36,000).

Invariants:
- Deterministic: every word list is a fixed tuple (`dispatch.demo_words`, shared with
  the history generator) and every random choice comes from one
  `random.Random(SEED)` consumed in one fixed order, so two loads of the same scale give
  identical rows (only the timestamps and the salted password hashes differ).
- Rows are generated depth-first in ascending code order. A child's code extends its
  parent's significant digits, so that order is also `path` order: every parent row precedes
  its children (the self-referencing foreign key holds row by row) and both the primary key
  and the `path` index are filled in ascending order.
- `path` follows dispatch/centres.py: the codes root-first, each followed by "/".
- Codes: district DDDDDD000000, town DDDDDD TTT 000 (streets 001–099, towns 100+),
  village DDDDDD TTT VVV (社区 001–099, 村 200+), as in the national statistical codes.
  The province is synthetic and all its codes start with "91", which no real province
  uses, so it can never collide with the real code 511703… of the 达川区 demo.
- Every centre gets exactly one account (username = its 12-digit code, role by level) and
  there is one "admin"; all accounts of a role share one password hash (see `role_hashes`).
- `load_demo` writes only through the session it is given and never commits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, insert
from sqlmodel import Session, select

from . import accounts, centres, demo_words
from .accounts import Account, Role
from .centres import Centre, CentreClass, Level
from .clock import utcnow
from .demo_words import (
    COMMUNITY_STEMS,
    DACHUAN_STREETS,
    DACHUAN_TOWNS,
    NAME_FIRST,
    NAME_SECOND,
    PHONE_PREFIXES,
    SEAT_COMMUNITY,
    VILLAGE_STEMS,
)
from .errors import Conflict, InvalidInput, NotAuthenticated

DEMO_DISTRICT_CODE: Final = "511703000000"
DEMO_DISTRICT_NAME: Final = "达川区"
PROVINCE_PREFIX: Final = "91"
SCALES: Final = ("district", "province")
SEED: Final = 2026

# The demo logins, one password per role. They are public (printed by `make serve`,
# written in this file), so a database loaded with demo data must never face users.
DEMO_PASSWORDS: Final[dict[str, str]] = {
    "admin": "admin-demo-2026",
    "district_operator": "district-demo-2026",
    "town_operator": "town-demo-2026",
    "village": "village-demo-2026",
}
ADMIN_USERNAME: Final = "admin"
ADMIN_DISPLAY_NAME: Final = "系统管理员"
ACCOUNT_SUFFIX: Final = "综治中心"

ROLE_FOR_LEVEL: Final[dict[Level, Role]] = {
    Level.district: Role.district_operator,
    Level.town: Role.town_operator,
    Level.village: Role.village,
}

# Classes of everything except the district centres and the streets of 达川区 (which are
# all demonstration) are dealt from a shuffled deck of 20 cards: 3 demonstration (15 %),
# 7 establishing (35 %), 10 follow-on (50 %), reshuffled when empty. Unlike independent
# draws, each block of 20 deals holds those exact shares, so even the ≈300 centres of
# 达川区 are within a card of them.
CLASS_DECK: Final = (
    (CentreClass.demonstration,) * 3
    + (CentreClass.establishing,) * 7
    + (CentreClass.follow_on,) * 10
)

# Province shape: 21 cities × 7–10 districts × 13–22 towns (1–3 of them streets) ×
# 6–15 villages: with SEED, 178 districts, 3,052 towns and 32,408 villages.
PROVINCE_CITIES: Final = 21
PROVINCE_DISTRICTS_PER_CITY: Final = (7, 10)
PROVINCE_TOWNS_PER_DISTRICT: Final = (13, 22)
PROVINCE_STREETS_PER_DISTRICT: Final = (1, 3)
PROVINCE_VILLAGES_PER_TOWN: Final = (6, 15)
# 达川区: every town has 8–20 villages.
DISTRICT_VILLAGES_PER_TOWN: Final = (8, 20)


@dataclass(frozen=True)
class DemoSummary:
    scale: str
    districts: int
    towns: int
    villages: int
    accounts: int
    seconds: float


@dataclass
class DemoRows:
    """Rows ready for bulk insert; `centres` is in code order (= path order, parents first)."""

    scale: str
    centres: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    districts: int = 0
    towns: int = 0
    villages: int = 0


class _Builder:
    """Appends one centre row and its account row per `add`; owns the only Random."""

    def __init__(self, scale: str, hashes: dict[Role, str], now: datetime) -> None:
        self.rng = random.Random(SEED)
        self.rows = DemoRows(scale)
        self.hashes = hashes
        self.now = now
        self.deck: list[CentreClass] = []  # cards not yet dealt by draw_class

    # -- random pieces; each call consumes the Random in a fixed order ----------------

    def person(self) -> str:
        return demo_words.person(self.rng)

    def phone(self) -> str:
        return f"{self.rng.choice(PHONE_PREFIXES)}0000{self.rng.randrange(10000):04d}"

    def draw_class(self) -> CentreClass:
        if not self.deck:
            self.deck = list(CLASS_DECK)
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def stems(self, k: int) -> list[str]:
        """k distinct two-character stems from NAME_FIRST × NAME_SECOND."""
        out: list[str] = []
        seen: set[str] = set()
        while len(out) < k:
            stem = self.rng.choice(NAME_FIRST) + self.rng.choice(NAME_SECOND)
            if stem[0] != stem[1] and stem not in seen:
                seen.add(stem)
                out.append(stem)
        return out

    # -- rows --------------------------------------------------------------------------

    def add(
        self,
        *,
        code: str,
        name: str,
        level: Level,
        parent_path: str,
        cls: CentreClass,
        workers: int,
    ) -> str:
        """Append the centre and its account; return the centre's path.

        `parent_path` is "" for a district (a root); the caller passes children only
        after their parent, which keeps the rows in path order.
        """
        path = f"{parent_path}{code}/"
        parent_code = parent_path[-13:-1] if parent_path else None
        director_name, director_phone = self.person(), self.phone()
        grid = [{"name": self.person(), "phone": self.phone()} for _ in range(workers)]
        self.rows.centres.append(
            {
                "code": code,
                "name": name,
                "level": level.value,
                "parent_code": parent_code,
                "path": path,
                "centre_class": cls.value,
                "target_year": cls.default_target_year,
                "director_name": director_name,
                "director_phone": director_phone,
                "grid_workers": grid,
                "active": True,
                "updated_at": self.now,
            }
        )
        role = ROLE_FOR_LEVEL[level]
        self.rows.accounts.append(
            {
                "username": code,
                "display_name": name + ACCOUNT_SUFFIX,
                "role": role.value,
                "centre_code": code,
                "password_hash": self.hashes[role],
                "active": True,
                "created_at": self.now,
            }
        )
        if level is Level.district:
            self.rows.districts += 1
        elif level is Level.town:
            self.rows.towns += 1
        else:
            self.rows.villages += 1
        return path

    def add_villages(
        self,
        town_code: str,
        town_path: str,
        communities: Sequence[str],
        villages: Sequence[str],
    ) -> None:
        """社区 get codes 001, 002, …; 村 get 201, 202, ….

        Both kinds stay under 100 per town (at most 20 here), so a 社区 code stays in
        001–099 and a 村 code in 201–299, and the two ranges never meet.
        """
        prefix = town_code[:9]
        for i, name in enumerate(communities, start=1):
            self.add(
                code=f"{prefix}{i:03d}",
                name=name,
                level=Level.village,
                parent_path=town_path,
                cls=self.draw_class(),
                workers=self.rng.randint(1, 3),
            )
        for i, name in enumerate(villages, start=201):
            self.add(
                code=f"{prefix}{i:03d}",
                name=name,
                level=Level.village,
                parent_path=town_path,
                cls=self.draw_class(),
                workers=self.rng.randint(1, 3),
            )


def _build_district(b: _Builder) -> None:
    """达川区: 4 streets and 16 towns, 8–20 villages each."""
    district_path = b.add(
        code=DEMO_DISTRICT_CODE,
        name=DEMO_DISTRICT_NAME,
        level=Level.district,
        parent_path="",
        cls=CentreClass.demonstration,
        workers=0,
    )
    prefix = DEMO_DISTRICT_CODE[:6]
    towns = [(f"{prefix}{i:03d}000", n, True) for i, n in enumerate(DACHUAN_STREETS, 1)]
    towns += [(f"{prefix}{i:03d}000", n, False) for i, n in enumerate(DACHUAN_TOWNS, 100)]
    for code, name, is_street in towns:
        # The district's own streets are its showcase: all demonstration centres.
        cls = CentreClass.demonstration if is_street else b.draw_class()
        town_path = b.add(
            code=code,
            name=name,
            level=Level.town,
            parent_path=district_path,
            cls=cls,
            workers=b.rng.randint(0, 2),
        )
        total = b.rng.randint(*DISTRICT_VILLAGES_PER_TOWN)
        if is_street:
            # A street is mostly urban communities, with up to two villages at its edge.
            n_villages = b.rng.randint(0, 2)
            communities = [s + "社区" for s in b.rng.sample(COMMUNITY_STEMS, total - n_villages)]
            villages = [s + "村" for s in b.rng.sample(VILLAGE_STEMS, n_villages)]
        else:
            # A town is villages plus one or two communities at the town seat.
            n_communities = b.rng.randint(1, 2)
            communities = [name.removesuffix("镇") + "社区", SEAT_COMMUNITY][:n_communities]
            villages = [s + "村" for s in b.rng.sample(VILLAGE_STEMS, total - n_communities)]
        b.add_villages(code, town_path, communities, villages)


def _build_province(b: _Builder) -> None:
    """A synthetic province 91…: cities 01–21, districts 01–, towns and villages below."""
    n_per_city = [b.rng.randint(*PROVINCE_DISTRICTS_PER_CITY) for _ in range(PROVINCE_CITIES)]
    # District stems unique province-wide, so no two districts share a name.
    district_stems = iter(b.stems(sum(n_per_city)))
    for city, n_districts in enumerate(n_per_city, start=1):
        for district in range(1, n_districts + 1):
            d_prefix = f"{PROVINCE_PREFIX}{city:02d}{district:02d}"
            district_path = b.add(
                code=f"{d_prefix}000000",
                name=next(district_stems) + "区",
                level=Level.district,
                parent_path="",
                cls=CentreClass.demonstration,
                workers=0,
            )
            n_towns = b.rng.randint(*PROVINCE_TOWNS_PER_DISTRICT)
            n_streets = b.rng.randint(*PROVINCE_STREETS_PER_DISTRICT)
            # Town stems unique within the district, so town names are too.
            for t, stem in enumerate(b.stems(n_towns)):
                is_street = t < n_streets
                number = t + 1 if is_street else 100 + t - n_streets
                town_code = f"{d_prefix}{number:03d}000"
                town_path = b.add(
                    code=town_code,
                    name=stem + ("街道" if is_street else "镇"),
                    level=Level.town,
                    parent_path=district_path,
                    cls=b.draw_class(),
                    workers=b.rng.randint(0, 2),
                )
                total = b.rng.randint(*PROVINCE_VILLAGES_PER_TOWN)
                n_communities = total - b.rng.randint(0, 2) if is_street else b.rng.randint(1, 2)
                # Stems unique within the town, so 村 and 社区 names are too.
                v_stems = b.stems(total)
                b.add_villages(
                    town_code,
                    town_path,
                    [s + "社区" for s in v_stems[:n_communities]],
                    [s + "村" for s in v_stems[n_communities:]],
                )


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise InvalidInput("scale", f"unknown scale {scale!r}: use district or province")
    return scale


def role_hashes() -> dict[Role, str]:
    """One argon2 hash per role, shared by every account of that role.

    argon2 is deliberately slow (50–300 ms a hash); hashing 36,000 province passwords one
    by one would take hours. Demo passwords are per role anyway, so one hash per role
    verifies exactly the same logins. (Each hash is still salted and verified normally;
    an account that later changes its password gets its own hash.)
    """
    return {role: accounts.hash_password(DEMO_PASSWORDS[role.value]) for role in Role}


def build_rows(scale: str, hashes: dict[Role, str], now: datetime) -> DemoRows:
    """Generate every centre and account row of `scale`, without touching a database.

    Public so the bench can time generation apart from the insert.
    """
    b = _Builder(_check_scale(scale), hashes, now)
    if scale == "district":
        _build_district(b)
    else:
        _build_province(b)
    return b.rows


def load_demo(session: Session, scale: str = "district") -> DemoSummary:
    """Load the demo into an empty database through `session`; the caller commits."""
    started = time.perf_counter()
    _check_scale(scale)
    held = session.exec(select(func.count()).select_from(Centre)).one()
    if held:
        raise Conflict(
            f"the database already holds {held} centres; "
            "demo data loads only into an empty database"
        )
    hashes = role_hashes()
    now = utcnow()  # one timestamp for every row of the load
    rows = build_rows(scale, hashes, now)
    account_rows = rows.accounts
    # An admin created before the demo (e.g. by `dispatch account create`) is kept with
    # its own password; the demo never overwrites a credential it did not create.
    existing_admin = session.exec(
        select(Account.id).where(Account.username == ADMIN_USERNAME)
    ).first()
    if existing_admin is None:
        account_rows = [
            {
                "username": ADMIN_USERNAME,
                "display_name": ADMIN_DISPLAY_NAME,
                "role": Role.admin.value,
                "centre_code": None,
                "password_hash": hashes[Role.admin],
                "active": True,
                "created_at": now,
            },
            *account_rows,
        ]
    # Bulk INSERTs (executemany): ~36,000 ORM objects added one by one would spend most
    # of the load in unit-of-work bookkeeping. Centres go first (accounts reference them),
    # and in path order (parents before children).
    session.exec(insert(Centre), params=rows.centres)
    session.exec(insert(Account), params=account_rows)
    return DemoSummary(
        scale=scale,
        districts=rows.districts,
        towns=rows.towns,
        villages=rows.villages,
        accounts=len(account_rows),
        seconds=time.perf_counter() - started,
    )


def demo_credentials(session: Session) -> list[tuple[str, str, str, str]]:
    """(role, username, password, centre name) of the demo logins `make serve` prints.

    Admin, the first district's operator, its first town (by code) and that town's first
    village. Each is verified against its demo password first and left out when it no
    longer matches (changed password, disabled account, not demo data), so what is printed
    always works. That costs one argon2 verify per login, four at most.
    """
    candidates: list[tuple[Role, str, str]] = [(Role.admin, ADMIN_USERNAME, "")]
    district = session.exec(
        select(Centre).where(Centre.level == Level.district.value).order_by(Centre.code)
    ).first()
    chain: list[Centre] = []
    if district is not None:
        chain.append(district)
        towns = centres.children(session, district.code)
        if towns:
            chain.append(towns[0])
            villages = centres.children(session, towns[0].code)
            if villages:
                chain.append(villages[0])
    for centre in chain:
        candidates.append((ROLE_FOR_LEVEL[Level(centre.level)], centre.code, centre.name))
    out: list[tuple[str, str, str, str]] = []
    for role, username, centre_name in candidates:
        password = DEMO_PASSWORDS[role.value]
        try:
            account = accounts.authenticate(session, username, password)
        except NotAuthenticated:
            continue
        if account.role == role.value:
            out.append((role.value, username, password, centre_name))
    return out
