"""Cameras (雪亮工程 public-security cameras) a centre owns, to be shown in its calls.

A camera is an RTSP stream with a name and the centre it belongs to. An admin
registers and changes cameras of any centre, a district operator those of its
district's centres; nobody else does. An operator may put a camera of a centre in its
scope into a call it runs (`dispatch.conference`), where it is a view-only participant.

Invariants:
- The stored `url` never carries credentials: a user name and password, given apart
  or inside the URL, are stored only in `secret`, encrypted (Fernet: AES-128-CBC and
  HMAC-SHA256) with a key derived from the service's secret key (HKDF-SHA256, its own
  `info`, so the session cookies' key is never used as is). Only `pull_url` puts
  them back, for the media that opens the stream.
- Nothing this module returns for showing (`as_dict`, errors) contains a credential:
  the URL shown is `rtsp://***@host/path` when the camera has any.
- Changing a camera's URL without giving credentials keeps the stored ones; an empty
  `password` with a `username` stores that user with no password.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlmodel import Field, Session, SQLModel, col, select

from . import centres
from .accounts import Role, Scope
from .centres import Centre
from .clock import utcnow
from .errors import Conflict, InvalidInput, NotAuthorised, NotFound

SCHEMES = ("rtsp", "rtsps")
MAX_URL, MAX_NAME, MAX_CREDENTIAL = 500, 100, 200
PARTICIPANT_PREFIX = "camera-"  # a camera's name in a call's media room: camera-<id>
_KDF_INFO = b"pingan-dispatch camera credentials v1"
_SUB_DELIMS = "!$&'()*+,;="  # left as they are in a URL's user info (RFC 3986 §3.2.1)


class Camera(SQLModel, table=True):
    """One registered camera; `url` has no credentials, `secret` holds them encrypted."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=MAX_NAME)
    centre_code: str = Field(foreign_key="centre.code", index=True)
    url: str = Field(max_length=MAX_URL)
    secret: str = Field(default="", max_length=2000)  # Fernet token, or "" for none
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=64)

    @property
    def participant(self) -> str:
        return participant_of(self.id or 0)

    def shown_url(self) -> str:
        """The URL as pages and the API show it: `***@` where credentials are."""
        if not self.secret:
            return self.url
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=f"***@{parts.netloc}"))

    def as_dict(self, centre_name: str = "") -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "centre": self.centre_code,
            "centre_name": centre_name,
            "url": self.shown_url(),
            "has_credentials": bool(self.secret),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def participant_of(camera_id: int) -> str:
    return f"{PARTICIPANT_PREFIX}{camera_id}"


def camera_id_of(participant: str) -> int | None:
    """The camera id of a media participant's name, or None for a centre."""
    rest = participant.removeprefix(PARTICIPANT_PREFIX)
    return int(rest) if rest != participant and rest.isdigit() else None


# --- the credentials' key ----------------------------------------------------------------


def credentials_key(secret_key: bytes) -> bytes:
    """The Fernet key for camera credentials, derived from the service's secret key."""
    raw = base64.urlsafe_b64decode(secret_key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(raw)
    return base64.urlsafe_b64encode(derived)


def _seal(key: bytes, username: str, password: str) -> str:
    if not username and not password:
        return ""
    text = json.dumps({"username": username, "password": password})
    return Fernet(key).encrypt(text.encode()).decode()


def _open(key: bytes, secret: str) -> tuple[str, str]:
    if not secret:
        return "", ""
    try:
        data = json.loads(Fernet(key).decrypt(secret.encode()))
    except InvalidToken:
        raise Conflict(
            "the camera's credentials cannot be read with this server's secret key "
            "(DISPATCH_SECRET or DATA_DIR/secret.key changed): enter them again"
        ) from None
    return str(data.get("username", "")), str(data.get("password", ""))


def pull_url(key: bytes, camera: Camera) -> str:
    """The URL the media opens: with the credentials put back. Never show or log it."""
    username, password = _open(key, camera.secret)
    if not username and not password:
        return camera.url
    parts = urlsplit(camera.url)
    auth = quote(username, safe=_SUB_DELIMS)
    if password:
        auth += ":" + quote(password, safe=_SUB_DELIMS)
    return urlunsplit(parts._replace(netloc=f"{auth}@{parts.netloc}"))


# --- validation ------------------------------------------------------------------------


def split_url(raw: str) -> tuple[str, str | None, str | None]:
    """(the URL without credentials, user name or None, password or None); InvalidInput
    naming `url` if it is not an rtsp:// or rtsps:// URL with a host. The message never
    repeats the URL (it may hold a password)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("url", "give the camera's RTSP address, e.g. rtsp://10.0.0.8/stream1")
    raw = raw.strip()
    if len(raw) > MAX_URL:
        raise InvalidInput("url", f"at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 for c in raw):
        raise InvalidInput("url", "no spaces or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise InvalidInput("url", "not a valid URL (check the host and port)") from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidInput("url", "must start with rtsp:// or rtsps://")
    if not parts.hostname:
        raise InvalidInput("url", "names no host")
    if parts.fragment:
        raise InvalidInput("url", "an RTSP address has no #fragment")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    clean = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, ""))
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return clean, username, password


def _text(value: str, field: str, limit: int, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidInput(field, "no control characters")
    return value


def _credential(value: str, field: str) -> str:
    if len(value) > MAX_CREDENTIAL:
        raise InvalidInput(field, f"at most {MAX_CREDENTIAL} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidInput(field, "no control characters")
    return value


# --- scope -------------------------------------------------------------------------------


def require_manager(scope: Scope) -> None:
    """Only an admin or a district operator registers and changes cameras."""
    if scope.role not in (Role.admin, Role.district_operator):
        raise NotAuthorised("only an admin or a district operator manages cameras")


def _centre_in_scope(session: Session, scope: Scope, code: str) -> Centre:
    centre = centres.get(session, centres.parse_code(code, "centre"))
    if not scope.covers(centre):
        raise NotAuthorised(f"centre {code} is not in your scope")
    return centre


def get_in_scope(session: Session, scope: Scope, camera_id: int) -> Camera:
    """A camera of a centre the scope covers (NotFound otherwise: not even its name)."""
    camera = session.get(Camera, camera_id)
    if camera is None or not scope.covers(centres.get(session, camera.centre_code)):
        raise NotFound("camera", str(camera_id))
    return camera


def list_in_scope(session: Session, scope: Scope, *, under: str | None = None) -> list[Camera]:
    """Cameras of the centres in scope (below `under`, if given), by centre then name."""
    stmt = select(Camera).join(Centre, col(Centre.code) == col(Camera.centre_code))
    root = scope.root_path
    if under is not None:
        root = _centre_in_scope(session, scope, under).path
    if root is not None:
        low, high = centres.below_range(root)
        stmt = stmt.where(col(Centre.path) >= low, col(Centre.path) < high)
    return list(session.exec(stmt.order_by(col(Centre.path), col(Camera.name), col(Camera.id))))


def names_of(session: Session, cams: list[Camera]) -> dict[str, str]:
    codes = {c.centre_code for c in cams}
    return {code: centres.get(session, code).name for code in codes}


# --- changes -----------------------------------------------------------------------------


def register(
    session: Session,
    scope: Scope,
    key: bytes,
    *,
    name: str,
    centre: str,
    url: str,
    username: str | None = None,
    password: str | None = None,
) -> Camera:
    """Add a camera; credentials may be given apart or inside the URL (not both)."""
    require_manager(scope)
    clean, secret = _address(key, url, username, password, keep="")
    owner = _centre_in_scope(session, scope, centre)
    camera = Camera(name=_text(name, "name", MAX_NAME, required=True), centre_code=owner.code,
                    url=clean, secret=secret, updated_by=scope.username)  # fmt: skip
    session.add(camera)
    session.flush()
    return camera


def change(
    session: Session, scope: Scope, key: bytes, camera_id: int, changes: dict[str, Any]
) -> Camera:
    """Change `name`, `centre`, `url`, `username`, `password` (the keys given)."""
    require_manager(scope)
    camera = get_in_scope(session, scope, camera_id)
    if "name" in changes:
        camera.name = _text(changes["name"], "name", MAX_NAME, required=True)
    if "centre" in changes:
        camera.centre_code = _centre_in_scope(session, scope, changes["centre"]).code
    if {"url", "username", "password"} & changes.keys():
        url = changes.get("url", camera.url)
        username, password = changes.get("username"), changes.get("password")
        if username is None and password is None and "url" in changes:
            keep = camera.secret  # a new address with the same credentials
        else:
            keep = ""
            if username is None or password is None:  # one given: the other as stored
                stored_user, stored_password = _open(key, camera.secret)
                username = stored_user if username is None else username
                password = stored_password if password is None else password
        camera.url, camera.secret = _address(key, url, username, password, keep=keep)
    camera.updated_at, camera.updated_by = utcnow(), scope.username
    session.add(camera)
    session.flush()
    return camera


def remove(session: Session, scope: Scope, camera_id: int) -> Camera:
    require_manager(scope)
    camera = get_in_scope(session, scope, camera_id)
    session.delete(camera)
    session.flush()
    return camera


def _address(
    key: bytes, url: str, username: str | None, password: str | None, *, keep: str
) -> tuple[str, str]:
    """(clean URL, secret) from what was given; `keep`: the secret if none is given."""
    clean, url_user, url_password = split_url(url)
    if url_user is not None and (username or password):
        raise InvalidInput("url", "give the credentials either in the URL or apart, not both")
    if url_user is not None:
        username, password = url_user, url_password or ""
    username = _credential(username or "", "username")
    password = _credential(password or "", "password")
    if password and not username:
        raise InvalidInput("username", "a password needs a user name")
    secret = _seal(key, username, password) if (username or password) else keep
    return clean, secret
