"""Issue 12 item 1: the service behind Debian's nginx, from the files `dispatch deploy`
writes. nginx runs from the generated site with the generated lab certificate on
127.0.0.1 (its own prefix, pid and logs in the test's folder); a client trusting only
the generated CA loads a page over HTTPS, upgrades a WebSocket through nginx, and the
login throttle sees each client's own address (from 127.0.0.2 and 127.0.0.3, through
X-Forwarded-For from the one trusted proxy) — a forged X-Forwarded-For gets nowhere.

The app's public URL is deliberately another host: the WebSocket's Origin
(https://127.0.0.1:PORT) is then accepted only because the app takes the scheme from
X-Forwarded-Proto and the Host with its port from nginx, and http:// of the same host is
refused."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from deploy_daemons import (
    binary,
    check_config,
    nginx_args,
    nginx_conf,
    running,
    until_listening,
)
from ports import free_port

from dispatch.settings import Settings
from web.app import create_app
from web.cli import main

from conftest import Cast, bearer, make_token

pytestmark = pytest.mark.timeout(120)


def _deploy(monkeypatch: pytest.MonkeyPatch, tmp: Path, app_port: int, port: int) -> Path:
    monkeypatch.setenv("DISPATCH_PUBLIC_URL", "https://dispatch.example.cn")
    monkeypatch.setenv("DISPATCH_PORT", str(app_port))
    assert main(["deploy", "ca", "--out", str(tmp / "tls"),
                 "--name", "dispatch.example.cn", "--name", "127.0.0.1"]) == 0  # fmt: skip
    site = tmp / "site.conf"
    assert main(["deploy", "nginx", "--cert", str(tmp / "tls/server.crt"),
                 "--key", str(tmp / "tls/server.key"), "--listen", f"127.0.0.1:{port}",
                 "--out", str(site)]) == 0  # fmt: skip
    return site


def _client(ca: Path, source: str) -> aiohttp.ClientSession:
    """A client that trusts only the generated CA, connecting from `source`."""
    context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context, local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(connector=connector)


async def test_https_through_nginx(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    nginx = binary("nginx")
    port = free_port()
    settings = demo_settings.with_(public_url="https://dispatch.example.cn",
                                   trusted_proxies="127.0.0.1", scheduler=False)  # fmt: skip
    server = await aiohttp_server(create_app(settings), host="127.0.0.1")
    site = _deploy(monkeypatch, tmp_path, server.port, port)
    prefix = tmp_path / "nginx"
    args = nginx_args(nginx, prefix, nginx_conf(prefix, site))
    checked = check_config([*args, "-t"])
    assert "syntax is ok" in checked and "test is successful" in checked

    log = tmp_path / "nginx.out"
    with running([*args, "-g", "daemon off;"], log) as proc:
        await until_listening(port, proc, log)
        base, ca = f"https://127.0.0.1:{port}", tmp_path / "tls/ca.crt"

        async with _client(ca, "127.0.0.2") as http:
            page = await http.get(f"{base}/login")
            assert page.status == 200 and "<form" in await page.text()
            assert page.headers["Strict-Transport-Security"].startswith("max-age=")
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]

            district = bearer(make_token(settings, cast.district))
            async with http.ws_connect(f"wss://127.0.0.1:{port}/ws/events",
                                       headers={**district, "Origin": base}) as ws:  # fmt: skip
                hello = json.loads((await ws.receive(timeout=15)).data)
                assert hello == {**hello, "type": "hello", "centre": cast.district}
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"wss://127.0.0.1:{port}/ws/events",
                                      headers={**district, "Origin": f"http://127.0.0.1:{port}"})
            assert refused.value.status == 403  # the app knows the client used https

            wrong = {"username": cast.town_a, "password": "not-the-password-1"}
            for _ in range(5):
                resp = await http.post(f"{base}/api/v1/auth/token", json=wrong)
                assert resp.status == 401
            throttled = await http.post(f"{base}/api/v1/auth/token", json=wrong)
            assert throttled.status == 429 and "Retry-After" in throttled.headers

        async with _client(ca, "127.0.0.3") as other:
            resp = await other.post(f"{base}/api/v1/auth/token", json=wrong)
            assert resp.status == 401  # another client address: not throttled
            forged = await other.post(f"{base}/api/v1/auth/token", json=wrong,
                                      headers={"X-Forwarded-For": "127.0.0.2"})  # fmt: skip
            assert forged.status == 401  # nginx appends the real one; the app takes it

    access = (prefix / "access.log").read_text()
    assert "127.0.0.2 " in access and "127.0.0.3 " in access
