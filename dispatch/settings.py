"""Settings: every knob the service has, with its environment variable and help text.

A test fails when a setting here is not documented in README.md.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from .errors import InvalidInput

DEFAULT_DB = "sqlite:///var/dispatch.db"
T = TypeVar("T")


def _setting(default: T, env: str, help: str) -> T:
    """A setting's default, with its environment variable and help text as metadata."""
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    db_url: str = _setting(
        DEFAULT_DB,
        "DISPATCH_DB",
        "Database URL: sqlite:///path (WAL mode) or postgresql+psycopg://user:pw@host/db.",
    )
    data_dir: str = _setting(
        "var",
        "DISPATCH_DATA",
        "Folder for the session key, snapshots, recordings and exported files.",
    )
    host: str = _setting("127.0.0.1", "DISPATCH_HOST", "Address the web server listens on.")
    port: int = _setting(8080, "DISPATCH_PORT", "Port the web server listens on.")
    secret_key: str = _setting(
        "",
        "DISPATCH_SECRET",
        "Key (44 chars, urlsafe base64 of 32 bytes) that encrypts session cookies. "
        "Empty: read from DATA_DIR/secret.key, created on first start.",
    )
    session_max_age: int = _setting(
        8 * 3600, "DISPATCH_SESSION_MAX_AGE", "Seconds a page login lasts."
    )
    token_max_age: int = _setting(
        30 * 86400, "DISPATCH_TOKEN_MAX_AGE", "Seconds an API bearer token lasts."
    )
    cookie_secure: bool = _setting(
        False,
        "DISPATCH_COOKIE_SECURE",
        "Send the session cookie only over HTTPS (set to 1 behind TLS).",
    )
    scheduler: bool = _setting(
        True,
        "DISPATCH_SCHEDULER",
        "Run the week's jobs (build next week's rota, reminders, missed calls, make-ups) "
        "inside `dispatch serve`. Servers sharing one PostgreSQL database elect one of them "
        "to run them (an advisory lock); the others stand by and one takes over when it goes.",
    )
    scheduler_retry: float = _setting(
        5.0,
        "DISPATCH_SCHEDULER_RETRY",
        "Seconds between a standby server's tries for the scheduler's lock, and between the "
        "leader's checks that it still holds it (PostgreSQL).",
    )
    public_url: str = _setting(
        "http://localhost:8080",
        "DISPATCH_PUBLIC_URL",
        "The address users reach the server at; used in calendar feeds, join links and the "
        "Origin check (a page of another origin cannot change state or open a WebSocket).",
    )
    ice_hosts: str = _setting(
        "",
        "DISPATCH_ICE_HOSTS",
        "Comma-separated IP addresses the server gathers ICE host candidates on for calls "
        "(e.g. 127.0.0.1 for a single-machine demo or tests). Empty: every interface "
        "except loopback.",
    )
    ice_servers: str = _setting(
        "",
        "DISPATCH_ICE_SERVERS",
        "Space-separated STUN/TURN URLs for the server's peers, e.g. "
        "stun:stun.example.cn:3478 or turn:user:pass@turn.example.cn:3478. Empty: none "
        "(never a public fallback).",
    )
    turn_urls: str = _setting(
        "",
        "DISPATCH_TURN_URLS",
        "Space-separated TURN URLs of the relay (coturn with use-auth-secret), e.g. "
        "turn:turn.example.cn:3478?transport=udp turn:turn.example.cn:3478?transport=tcp. "
        "Pages, WHIP publishers and the server's peers get credentials for them.",
    )
    turn_secret: str = _setting(
        "",
        "DISPATCH_TURN_SECRET",
        "The static-auth-secret shared with coturn; TURN credentials (TURN REST API "
        "scheme) are derived from it. Required with DISPATCH_TURN_URLS.",
    )
    turn_ttl: int = _setting(
        3600,
        "DISPATCH_TURN_TTL",
        "Seconds a TURN credential handed to a page or WHIP publisher stays valid (a page "
        "asks for a new one before each connection).",
    )
    video_codec: str = _setting(
        "VP8",
        "DISPATCH_VIDEO_CODEC",
        "Video codec every call forwards: VP8 or H264. A publisher that sends only another "
        "codec (a WHIP encoder) is transcoded once when its video arrives.",
    )
    video_fps: int = _setting(
        15,
        "DISPATCH_VIDEO_FPS",
        "Frames per second a call page's camera sends at most (1-60). Every viewer gets "
        "what the publisher sends: 15 keeps a 21-centre meeting within a village PC.",
    )
    video_kbps: int = _setting(
        800,
        "DISPATCH_VIDEO_KBPS",
        "Kilobits per second a call page's camera sends at most (100-20000); the browser "
        "lowers it further on a weak uplink. Without a cap Chromium sends 640x360 at up "
        "to 1.7 Mbit/s, which every one of a meeting's viewers then receives.",
    )
    media_workers: str = _setting(
        "auto",
        "DISPATCH_MEDIA_WORKERS",
        "Media worker processes that carry the calls' audio and video: a number, or auto "
        "(one per core). 0 runs the media inside the server process (tests, debugging).",
    )
    media_span_at: str = _setting(
        "40",
        "DISPATCH_MEDIA_SPAN_AT",
        "Participants a media worker carries before a call that needs more spans to "
        "another worker (each publisher's media then crosses once between the two).",
    )
    camera_timeout: float = _setting(
        10.0,
        "DISPATCH_CAMERA_TIMEOUT",
        "Seconds a camera's RTSP stream may take to open, or go without a packet, before "
        "it counts as dropped and is opened again.",
    )
    camera_retry_max: float = _setting(
        30.0,
        "DISPATCH_CAMERA_RETRY_MAX",
        "Longest wait (seconds) between tries to reopen a dropped camera: 1 s, then "
        "doubling up to this, from 1 s again once it came back.",
    )
    sdp_max_bytes: int = _setting(
        64 * 1024,
        "DISPATCH_SDP_MAX_BYTES",
        "Largest SDP offer an invited centre or a WHIP publisher may send (bytes); larger "
        "ones get 413 before they are parsed. The operator's offer may be larger by an "
        "eighth of this per invited centre (it carries a video and an audio for each).",
    )
    import_max_rows: int = _setting(
        100_000,
        "DISPATCH_IMPORT_MAX_ROWS",
        "Rows after the header a centre import file may have; a longer file is refused "
        "before its rows are checked.",
    )
    trusted_proxies: str = _setting(
        "",
        "DISPATCH_TRUSTED_PROXIES",
        "Comma-separated addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) of reverse "
        "proxies whose X-Forwarded-For is believed: the client's address is the last one "
        "in it not of a trusted proxy. Empty: the peer's own address, the header ignored.",
    )
    header_timeout: float = _setting(
        10.0,
        "DISPATCH_HEADER_TIMEOUT",
        "Seconds a client has to send a request's headers, from its first byte (from the "
        "connection's opening for its first request); a slower one is disconnected.",
    )
    body_timeout: float = _setting(
        60.0,
        "DISPATCH_BODY_TIMEOUT",
        "Seconds a client has to send a request's body after its headers (uploads "
        "included); a slower one is disconnected.",
    )
    max_connections_per_address: int = _setting(
        100,
        "DISPATCH_MAX_CONNECTIONS_PER_ADDRESS",
        "Connections one client address may hold open at once; one more is closed at once. "
        "A proxy in DISPATCH_TRUSTED_PROXIES is not capped (it carries every client).",
    )
    default_lang: str = _setting(
        "zh", "DISPATCH_LANG", "Language when the browser states none: zh or en."
    )
    backup_dir: str = _setting(
        "",
        "DISPATCH_BACKUP_DIR",
        "Folder the nightly backup (02:30 Asia/Shanghai) is written to. Empty: DATA_DIR/backups.",
    )
    backup_keep: int = _setting(
        14,
        "DISPATCH_BACKUP_KEEP",
        "Nightly backups kept; older ones are deleted after each new one. 0: no nightly backup.",
    )
    recording_keep_days: int = _setting(
        180,
        "DISPATCH_RECORDING_KEEP_DAYS",
        "Days a call's recordings are kept after they end. A nightly job (03:15 "
        "Asia/Shanghai) removes older files — never one of a call an unresolved issue was "
        "raised in — and records each removal in the call's journal. 0: kept forever.",
    )
    recording_min_free_mb: int = _setting(
        1024,
        "DISPATCH_RECORDING_MIN_FREE_MB",
        "Free space (MB) the disk of DATA_DIR/recordings must keep. Below it a recording "
        "does not start, and one being written stops with a journal event (the call goes "
        "on). Checked when recording starts and every 2 s while a file is written.",
    )
    log_level: str = _setting(
        "INFO",
        "DISPATCH_LOG_LEVEL",
        "Lowest level of log line written: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    )
    log_format: str = _setting(
        "text",
        "DISPATCH_LOG_FORMAT",
        "text: one plain line per record; json: one JSON object per line (time, level, "
        "logger, message, pid, exc). Tokens, cookies and passwords are redacted in both.",
    )
    metrics_token: str = _setting(
        "",
        "DISPATCH_METRICS_TOKEN",
        "A secret a Prometheus scraper sends as Authorization: Bearer to read /metrics. "
        "Empty: none (a logged-in system administrator still may).",
    )
    metrics_allow: str = _setting(
        "",
        "DISPATCH_METRICS_ALLOW",
        "Comma-separated addresses or networks that may read /metrics with no token (the "
        "client's address through DISPATCH_TRUSTED_PROXIES). Empty: none.",
    )

    @classmethod
    def from_env(
        cls,
        env: dict[str, str] | None = None,
        file: dict[str, object] | None = None,
        **overrides: object,
    ) -> Settings:
        """Defaults, then the settings file's values (dispatch/config_file.py), then
        environment variables, then explicit overrides (CLI flags)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = dict(file or {})
        for f in fields(cls):
            name = f.metadata["env"]
            if name in env and env[name] != "":
                values[f.name] = _coerce(f.type, env[name], name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def backup_path(self) -> Path:
        return Path(self.backup_dir) if self.backup_dir else self.data_path / "backups"

    def session_key(self) -> bytes:
        """The cookie key: the setting, else DATA_DIR/secret.key (created 0600 once)."""
        if self.secret_key:
            return _check_key(self.secret_key.encode(), "DISPATCH_SECRET")
        path = self.data_path / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = base64.urlsafe_b64encode(secrets.token_bytes(32))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
        return _check_key(path.read_bytes().strip(), str(path))


def _check_key(key: bytes, where: str) -> bytes:
    try:
        ok = len(base64.urlsafe_b64decode(key)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInput(where, "must be 44 characters of URL-safe base64 (32 bytes)")
    return key


def _coerce(kind: object, raw: str, name: str) -> object:

    if kind in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(name, f"expected a whole number, got {raw!r}") from None
    if kind in (float, "float"):
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(name, f"expected a number, got {raw!r}") from None
        return check_value(float, value, name)
    if kind in (bool, "bool"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise InvalidInput(name, f"expected 1 or 0, got {raw!r}")
    return raw


def check_value(kind: object, value: object, name: str) -> object:
    """The range checks a typed value passes, from the environment or a settings file."""
    if kind in (float, "float") and not (isinstance(value, int | float) and 0 < value < 86_400):
        raise InvalidInput(name, f"expected seconds above 0 and below a day, got {value!r}")
    return value


def documented_settings() -> list[tuple[str, str, str, object]]:
    """(field, env var, help, default) for every setting, for the README and `--help`."""
    return [(f.name, f.metadata["env"], f.metadata["help"], f.default) for f in fields(Settings)]


def video_codec(settings: Settings) -> str:
    """The room codec, normalised; a codec the media layer cannot forward names the variable."""
    from media.codecs import CodecError, check_room_codec

    try:
        return check_room_codec(settings.video_codec)
    except CodecError as exc:
        raise InvalidInput("DISPATCH_VIDEO_CODEC", str(exc)) from None


def publish_limits(settings: Settings) -> tuple[int, int]:
    """(frames per second, bits per second) a call page publishes its camera at most."""
    if not 1 <= settings.video_fps <= 60:
        raise InvalidInput("DISPATCH_VIDEO_FPS", f"expected 1-60, got {settings.video_fps}")
    if not 100 <= settings.video_kbps <= 20_000:
        raise InvalidInput("DISPATCH_VIDEO_KBPS", f"expected 100-20000, got {settings.video_kbps}")
    return settings.video_fps, settings.video_kbps * 1000


def media_workers(settings: Settings) -> int:
    """How many media worker processes to run (0: media in the server process)."""
    raw = settings.media_workers.strip().lower()
    if raw == "auto":
        return os.cpu_count() or 1
    if not raw.isdigit() or int(raw) > 256:
        raise InvalidInput("DISPATCH_MEDIA_WORKERS", f"expected auto or 0-256, got {raw!r}")
    return int(raw)


def recording_limits(settings: Settings) -> tuple[int, int]:
    """(days recordings are kept, 0 for ever; bytes of free space recording needs)."""
    if settings.recording_keep_days < 0:
        raise InvalidInput("DISPATCH_RECORDING_KEEP_DAYS", "expected 0 (kept for ever) or more")
    if settings.recording_min_free_mb < 0:
        raise InvalidInput("DISPATCH_RECORDING_MIN_FREE_MB", "expected 0 or more megabytes")
    return settings.recording_keep_days, settings.recording_min_free_mb * 1024 * 1024


def media_span_at(settings: Settings) -> int:
    """Participants per media worker before a call's room spans to another."""
    raw = settings.media_span_at.strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise InvalidInput("DISPATCH_MEDIA_SPAN_AT", f"expected a number from 1, got {raw!r}")
    return int(raw)


def ice_settings(settings: Settings) -> Any:
    """The media layer's ICE settings from ours; a bad address or URL names the variable."""
    # Imported here: the media stack (aiortc) loads only for the server, not every CLI run.
    from media.ice import IceServer, IceSettings

    hosts = tuple(h.strip() for h in settings.ice_hosts.split(",") if h.strip())
    servers = []
    for url in settings.ice_servers.split():
        scheme, _, rest = url.partition(":")
        user = password = None
        if "@" in rest:
            auth, _, rest = rest.rpartition("@")
            user, _, password = auth.partition(":")
        servers.append(IceServer((f"{scheme}:{rest}",), user or None, password or None))
    from . import turn

    for relay in turn.for_server(settings):  # long-lived: workers get these once
        servers.append(IceServer(tuple(relay["urls"]), relay["username"], relay["credential"]))
    try:
        return IceSettings(host_addresses=hosts, ice_servers=tuple(servers))
    except ValueError as exc:
        name = "DISPATCH_ICE_HOSTS" if "host address" in str(exc) else "DISPATCH_ICE_SERVERS"
        raise InvalidInput(name, str(exc)) from None
