"""Issue 12 items 1-2, the parts without a daemon: the nginx site, the systemd unit and
its env file, the lab CA, coturn's file, TURN REST credentials, and how they reach a
call page (GET /api/v1/calls/{id}/ice), a WHIP publisher (Link) and the
server's own peers (IceSettings). The daemons: test_deploy_nginx.py, test_deploy_turn.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from deploy_daemons import binary, check_config, nginx_args, nginx_conf

from dispatch import deploy, lab_ca, turn
from dispatch.errors import InvalidInput
from dispatch.settings import Settings, ice_settings
from web.app import create_app
from web.cli import main
from web.whip import ice_links

from conftest import Cast, bearer, make_token

TURN = {"turn_urls": "turn:127.0.0.1:3478?transport=udp", "turn_secret": "s3cret"}


def test_a_credential_follows_the_turn_rest_api_scheme() -> None:
    cred = turn.credential("s3cret", "511703001001", 600, now=1_800_000_000)
    assert cred.username == "1800000600:511703001001" and cred.expires == 1_800_000_600
    digest = hmac.new(b"s3cret", b"1800000600:511703001001", hashlib.sha1).digest()
    assert cred.password == base64.b64encode(digest).decode()


def test_turn_settings_are_checked_by_name(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="DISPATCH_TURN_SECRET"):
        turn.for_client(settings.with_(turn_urls="turn:h:3478"), "x")
    with pytest.raises(InvalidInput, match="DISPATCH_TURN_URLS"):
        turn.for_client(settings.with_(turn_urls="stun:h:3478", turn_secret="s"), "x")
    with pytest.raises(InvalidInput, match="DISPATCH_TURN_URLS"):
        turn.for_client(settings.with_(turn_urls="turn:u:p@h:3478", turn_secret="s"), "x")
    assert turn.for_client(settings, "x") == ([], None)  # nothing configured: nothing handed


def test_the_servers_own_peers_get_a_long_lived_credential(settings: Settings) -> None:
    ice = ice_settings(settings.with_(ice_servers="stun:127.0.0.1:3478", **TURN))
    stun, relay = ice.ice_servers
    assert stun.urls == ("stun:127.0.0.1:3478",) and stun.username is None
    expiry, _, who = (relay.username or "").partition(":")
    assert who == turn.SERVER_CENTRE and relay.urls == (TURN["turn_urls"],)
    assert int(expiry) > turn.credential("k", "x", 300 * 86_400).expires


def test_whip_links_carry_a_credential_for_the_publishers_centre(settings: Settings) -> None:
    links = ice_links(settings.with_(**TURN), "511703001001")
    assert len(links) == 1 and links[0].startswith("<turn:127.0.0.1:3478?transport=udp>")
    assert ':511703001001"' in links[0] and 'credential-type="password"' in links[0]


async def test_a_participant_gets_fresh_ice_servers_and_nobody_else(
    aiohttp_client: Any, demo_settings: Settings, cast: Cast
) -> None:
    s = demo_settings.with_(scheduler=False, **TURN)
    client: TestClient = await aiohttp_client(create_app(s))
    town = bearer(make_token(s, cast.town_a))
    resp = await client.post("/api/v1/calls", headers=town,
                             json={"callees": [cast.village_a1], "kind": "inspection"})  # fmt: skip
    launched = await resp.json()
    call_id, token = launched["call"]["id"], launched["invites"][0]["join_token"]

    resp = await client.get(f"/api/v1/calls/{call_id}/ice", headers=bearer(token))
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    [server] = body["iceServers"]
    assert server["urls"] == [TURN["turn_urls"]]
    assert server["username"] == f"{body['expires']}:{cast.village_a1}"
    assert server["credential"] == turn.credential(
        "s3cret", cast.village_a1, 1, now=body["expires"] - 1).password
    mine = await client.get(f"/api/v1/calls/{call_id}/ice", headers=town)
    assert (await mine.json())["iceServers"][0]["username"].endswith(f":{cast.town_a}")
    other = bearer(make_token(s, cast.village_b1))
    assert (await client.get(f"/api/v1/calls/{call_id}/ice")).status == 401
    outsider = await client.get(f"/api/v1/calls/{call_id}/ice?token=forged")
    assert outsider.status in (401, 403)
    assert (await client.get(f"/api/v1/calls/{call_id}/ice", headers=other)).status \
        == 403  # a call outside the account's scope


def test_the_nginx_site(settings: Settings, tmp_path: Path) -> None:
    s = settings.with_(public_url="https://dispatch.example.cn", port=8123)
    site = deploy.nginx_site(s, Path("/c.pem"), Path("/k.pem"))
    assert "server 127.0.0.1:8123;" in site and "listen 443 ssl http2;" in site
    assert "return 301 https://" in site  # port 80 redirects
    for location in site.split("location ")[1:]:  # nginx drops inherited proxy headers
        for header in ("Host $http_host", "X-Forwarded-For $proxy_add_x_forwarded_for",
                       "X-Forwarded-Proto $scheme"):  # fmt: skip
            assert f"proxy_set_header {header};" in location
    assert "proxy_set_header Upgrade $http_upgrade;" in site.split("location /ws/")[1]
    assert f"client_max_body_size {deploy.MAX_BODY_BYTES // 2**20}m;" in site
    with pytest.raises(InvalidInput, match="DISPATCH_PUBLIC_URL"):
        deploy.nginx_site(settings, Path("/c"), Path("/k"))  # http: no TLS site


def test_the_body_limit_is_the_apps(settings: Settings) -> None:
    assert create_app(settings)._client_max_size == deploy.MAX_BODY_BYTES


def test_systemd_unit_and_env_file(settings: Settings, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("DISPATCH_PUBLIC_URL", "https://dispatch.example.cn")
    monkeypatch.setenv("DISPATCH_TURN_SECRET", "s3cret")
    out = tmp_path / "unit"
    assert main(["deploy", "systemd", "--out", str(out), "--workdir", str(tmp_path)]) == 0
    unit = (out / "pingan-dispatch.service").read_text()
    assert "ExecStart=" in unit and unit.split("ExecStart=")[1].split("\n")[0].endswith(" serve")
    assert "EnvironmentFile=/etc/pingan-dispatch/pingan-dispatch.env" in unit
    env = out / "pingan-dispatch.env"
    assert env.stat().st_mode & 0o077 == 0
    lines = env.read_text().splitlines()
    assert "DISPATCH_COOKIE_SECURE=1" in lines and "DISPATCH_TURN_SECRET=s3cret" in lines
    assert "DISPATCH_TRUSTED_PROXIES=127.0.0.1" in lines  # nginx on this machine
    assert not any(line.startswith("DISPATCH_PORT=") for line in lines)  # defaults left out
    analyze = shutil.which("systemd-analyze")
    if analyze:  # Debian's systemd; the unit as systemd itself reads it
        done = subprocess.run([analyze, "verify", str(out / "pingan-dispatch.service")],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0 and "pingan-dispatch" not in done.stderr, done.stderr


def test_the_lab_ca_signs_a_server_certificate_and_is_kept(tmp_path: Path) -> None:
    files = lab_ca.write_lab_ca(tmp_path, ["dispatch.example.cn", "10.1.2.3"])
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["dispatch.example.cn", "10.1.2.3"]
    assert files.server_key.stat().st_mode & 0o077 == 0
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0
    with pytest.raises(InvalidInput, match="exists"):
        lab_ca.write_lab_ca(tmp_path, ["x"])  # never overwrites
    files.server_cert.unlink()
    files.server_key.unlink()
    again = lab_ca.write_lab_ca(tmp_path, ["other.example.cn"])  # the same CA signs it
    x509.load_pem_x509_certificate(again.server_cert.read_bytes()).verify_directly_issued_by(ca)


def test_the_turnserver_file(settings: Settings) -> None:
    s = settings.with_(public_url="https://dispatch.example.cn", **TURN)
    conf = deploy.turnserver_conf(s, deploy.TurnPorts(3478, 50000, 50100)).splitlines()
    for line in ("use-auth-secret", "static-auth-secret=s3cret", "realm=dispatch.example.cn",
                 "listening-port=3478", "min-port=50000", "max-port=50100",
                 "denied-peer-ip=127.0.0.0-127.255.255.255"):  # fmt: skip
        assert line in conf
    assert "allow-loopback-peers" not in conf
    lab = deploy.turnserver_conf(s, deploy.TurnPorts(), lab=True).splitlines()
    assert "allow-loopback-peers" in lab and "denied-peer-ip=127.0.0.0-127.255.255.255" not in lab
    with pytest.raises(InvalidInput, match="DISPATCH_TURN_SECRET"):
        deploy.turnserver_conf(settings, deploy.TurnPorts())


def test_nginx_accepts_the_production_shaped_site(settings: Settings, tmp_path: Path) -> None:
    """Port 443 with the port-80 redirect, as a district installs it: `nginx -t` passes
    (the test binds nothing)."""
    nginx = binary("nginx")
    files = lab_ca.write_lab_ca(tmp_path / "tls", ["dispatch.example.cn"])
    site = tmp_path / "site.conf"
    s = settings.with_(public_url="https://dispatch.example.cn")
    site.write_text(deploy.nginx_site(s, files.server_cert, files.server_key))
    prefix = tmp_path / "nginx"
    out = check_config([*nginx_args(nginx, prefix, nginx_conf(prefix, site)), "-t"])
    assert "test is successful" in out
