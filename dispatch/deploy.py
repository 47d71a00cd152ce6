"""Files an admin installs to run the service for a district: an nginx site (TLS in
front of `dispatch serve`), a systemd unit with its environment file, and a coturn
configuration. Pure functions of the settings and a few choices; `dispatch deploy …`
(web/cli_deploy.py) writes them.

Invariants of the nginx site:
- every location sets the same proxy headers (nginx drops the server level's
  `proxy_set_header`s in a location that sets any), so X-Forwarded-For (the client's
  address appended) and X-Forwarded-Proto reach the app on every path; the app believes
  them only from DISPATCH_TRUSTED_PROXIES (web/remote.py), which must name nginx;
- `Host` is passed with its port, so the origin the app sees is the browser's own;
- WebSockets live under /ws/ and get HTTP/1.1 with Upgrade and a read timeout far above
  the app's 25 s WebSocket heartbeat (web/live.py), so nginx never cuts a quiet socket;
  the request body limit equals the app's (MAX_BODY_BYTES);
- IPv4 only, as the service itself listens (a host without IPv6 must not fail to start).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from .errors import InvalidInput
from .settings import Settings

# aiohttp's client_max_size in web/app.py; tests/test_deploy.py holds them equal.
MAX_BODY_BYTES = 20 * 1024 * 1024
WEBSOCKET_READ_TIMEOUT_S = 3600
HTTP_READ_TIMEOUT_S = 300  # reports and PDFs are made while the request waits
SITE_NAME = "pingan-dispatch"


@dataclass(frozen=True)
class PublicAddress:
    scheme: str
    host: str
    port: int


def public_address(settings: Settings) -> PublicAddress:
    """DISPATCH_PUBLIC_URL split; the site is written only for an https URL."""
    parts = urlsplit(settings.public_url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidInput(
            "DISPATCH_PUBLIC_URL",
            f"behind nginx with TLS it must be https://HOST[:PORT], got {settings.public_url!r}",
        )
    return PublicAddress(parts.scheme, parts.hostname, parts.port or 443)


def _upstream(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{settings.port}"


def nginx_site(settings: Settings, cert: Path, key: Path, listen: str | None = None) -> str:
    """A Debian nginx site (/etc/nginx/sites-available/pingan-dispatch).

    `listen` overrides where nginx listens (default: the public URL's port, all
    addresses); with port 443 a port-80 server redirects to https.
    """
    public = public_address(settings)
    listen = listen or str(public.port)
    proxy = "\n".join(
        f"        {line}"
        for line in (
            "proxy_pass http://pingan_dispatch;",
            "proxy_http_version 1.1;",
            "proxy_set_header Host $http_host;",
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_set_header X-Real-IP $remote_addr;",
        )
    )
    redirect = ""
    if public.port == 443 and listen == "443":
        redirect = f"""
server {{
    listen 80;
    server_name {public.host};
    return 301 https://$host$request_uri;
}}
"""
    body_timeout = max(1, int(settings.body_timeout))
    return f"""# {SITE_NAME}: written by `dispatch deploy nginx` for {settings.public_url}
# The app must trust this proxy: DISPATCH_TRUSTED_PROXIES=127.0.0.1 (or nginx's address).

upstream pingan_dispatch {{
    server {_upstream(settings)};
    keepalive 16;
}}

# WebSocket upgrade: "upgrade" when the client asks for it, else keep-alive upstream.
map $http_upgrade $pingan_dispatch_connection {{
    default upgrade;
    ''      "";
}}
{redirect}
server {{
    listen {listen} ssl http2;
    server_name {public.host};

    ssl_certificate     {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:pingan_dispatch_tls:10m;
    ssl_session_timeout 1d;

    # Equal to the app's limits: a larger body is refused here first.
    client_max_body_size {MAX_BODY_BYTES // (1024 * 1024)}m;
    client_body_timeout {body_timeout}s;
    add_header Strict-Transport-Security "max-age=31536000" always;

    location /ws/ {{
{proxy}
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $pingan_dispatch_connection;
        proxy_buffering off;
        proxy_read_timeout {WEBSOCKET_READ_TIMEOUT_S}s;
        proxy_send_timeout {WEBSOCKET_READ_TIMEOUT_S}s;
    }}

    location / {{
{proxy}
        proxy_set_header Connection "";
        proxy_read_timeout {HTTP_READ_TIMEOUT_S}s;
        proxy_send_timeout {HTTP_READ_TIMEOUT_S}s;
        proxy_request_buffering on;
    }}
}}
"""


def environment_file(settings: Settings) -> str:
    """Every setting that differs from its default, as systemd's EnvironmentFile reads
    it; behind TLS the session cookie is marked Secure and, unless set, nginx on
    127.0.0.1 is the trusted proxy. Holds secrets: written mode 0600."""
    defaults = Settings()
    lines = [f"# written by `dispatch deploy systemd`; read by {SITE_NAME}.service"]
    for f in fields(Settings):
        value = getattr(settings, f.name)
        behind_tls = settings.public_url.startswith("https:")
        if f.name == "cookie_secure" and behind_tls:
            value = True
        if f.name == "trusted_proxies" and behind_tls and not value:
            value = "127.0.0.1"  # nginx on this machine (the site proxies to loopback)
        if value == getattr(defaults, f.name):
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        text = str(value)
        if "\n" in text:
            raise InvalidInput(f.metadata["env"], "cannot hold a line break")
        lines.append(f"{f.metadata['env']}={text}")
    return "\n".join(lines) + "\n"


def systemd_unit(settings: Settings, executable: Path, workdir: Path, env_file: Path,
                 user: str) -> str:  # fmt: skip
    """The unit that runs `dispatch serve` (/etc/systemd/system/pingan-dispatch.service)."""
    data = (workdir / settings.data_dir).resolve() if not Path(settings.data_dir).is_absolute() \
        else Path(settings.data_dir)  # fmt: skip
    writable = {str(data), str(settings.backup_path if settings.backup_path.is_absolute()
                               else (workdir / settings.backup_path).resolve())}  # fmt: skip
    db = settings.db_url
    if db.startswith("sqlite:///"):
        path = Path(db.removeprefix("sqlite:///"))
        writable.add(str((path if path.is_absolute() else workdir / path).resolve().parent))
    return f"""# {SITE_NAME}: written by `dispatch deploy systemd`
[Unit]
Description=Pingan Dispatch (平安调度) web server
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
WorkingDirectory={workdir}
EnvironmentFile={env_file}
ExecStart={shlex.quote(str(executable))} serve
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={" ".join("-" + p for p in sorted(writable))}

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class TurnPorts:
    listening: int = 3478
    relay_min: int = 49160
    relay_max: int = 49999


def turnserver_conf(settings: Settings, ports: TurnPorts, listening_ip: str = "",
                    external_ip: str = "", lab: bool = False) -> str:  # fmt: skip
    """coturn's configuration (/etc/turnserver.conf) for DISPATCH_TURN_SECRET's scheme.

    Peers on loopback and link-local/unspecified addresses are refused (a relay must not
    reach the TURN host's own services); `lab` allows loopback peers, for a one-machine
    test only.
    """
    if not settings.turn_secret:
        raise InvalidInput("DISPATCH_TURN_SECRET", "set the shared secret first")
    if "\n" in settings.turn_secret:
        raise InvalidInput("DISPATCH_TURN_SECRET", "cannot hold a line break")
    if not 0 < ports.relay_min <= ports.relay_max < 65536:
        raise InvalidInput("--relay-ports", f"bad range {ports.relay_min}-{ports.relay_max}")
    realm = urlsplit(settings.public_url).hostname or "localhost"
    lines = [
        "# written by `dispatch deploy turnserver`: TURN REST API credentials",
        f"listening-port={ports.listening}",
        *([f"listening-ip={listening_ip}", f"relay-ip={listening_ip}"] if listening_ip else []),
        *([f"external-ip={external_ip}"] if external_ip else []),
        f"min-port={ports.relay_min}",
        f"max-port={ports.relay_max}",
        f"realm={realm}",
        "use-auth-secret",
        f"static-auth-secret={settings.turn_secret}",
        "fingerprint",
        "no-cli",
        "no-tls",
        "no-dtls",
        "no-multicast-peers",
        "stale-nonce=600",
        # No per-user quota: the server's own peers share one username ("server") and
        # hold an allocation each; the total bounds what the relay carries.
        "total-quota=1200",
        "denied-peer-ip=0.0.0.0-0.255.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "denied-peer-ip=::1",
    ]
    if lab:
        lines += ["# lab only: relays to 127.0.0.1", "allow-loopback-peers"]
    else:
        lines.append("denied-peer-ip=127.0.0.0-127.255.255.255")
    return "\n".join(lines) + "\n"
