"""Issue 12 item 3, first part: a village's Chromium reaches the service only through
nginx over HTTPS on a non-loopback address, logs in, answers a call and sends video.

The village is Debian's Chromium (fake camera) in a network namespace made for the
test, joined to this one by a veth pair (10.231.x.1 here, .2 inside). Here the app
listens on 127.0.0.1 only — unreachable from the namespace — and nginx, from the site
`dispatch deploy nginx` wrote with the certificate `dispatch deploy ca` made, listens
on 10.231.x.1. The browser trusts the generated CA the way a village PC would: it is
imported into the profile's NSS database (certutil, Debian's libnss3-tools), no
certificate error is ignored, so the page is a secure context with a camera. Media goes
straight to the server's ICE host candidate on 10.231.x.1 (nginx carries HTTP only).
The operator is an aiortc client in this namespace; it must receive the village's
video. Everything stays on the pair and on loopback.

Not here yet (item 3's second part): a second namespace whose UDP to the media host is
blocked, joining through coturn.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from deploy_daemons import (
    binary,
    check_config,
    free_port,
    nginx_args,
    nginx_conf,
    running,
    until_listening,
)
from netns_pair import IP, veth_namespace
from playwright.async_api import Error as PlaywrightError

from dispatch.settings import Settings
from web.app import create_app
from web.cli import main

from browser import CHROMIUM, chromium, log_in
from conftest import Cast, bearer, make_token
from peers import Client, eventually, on_loopback

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
WAIT = 60_000  # ms: generous, the machine is shared


def trust_in_profile(home: Path, ca: Path) -> None:
    """The CA in $HOME/.pki/nssdb, where Chromium on Linux reads trusted roots."""
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.skip("certutil is not installed: `make system-deps` installs libnss3-tools")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for args in (["-N", "--empty-password"],
                 ["-A", "-n", "Pingan Dispatch lab CA", "-t", "C,,", "-i", str(ca)]):  # fmt: skip
        done = subprocess.run([certutil, "-d", f"sql:{db}", *args], capture_output=True,
                              text=True, timeout=30)  # fmt: skip
        assert done.returncode == 0, done.stderr


async def test_a_village_browser_reaches_the_service_only_through_nginx_over_https(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    nginx = binary("nginx")
    with veth_namespace("https") as pair:
        addr, port = pair.host_addr, free_port()
        public = f"https://{addr}:{port}"
        settings = demo_settings.with_(public_url=public, trusted_proxies="127.0.0.1",
                                       ice_hosts=f"{addr},127.0.0.1", cookie_secure=True,
                                       scheduler=False)  # fmt: skip
        server = await aiohttp_server(create_app(settings), host="127.0.0.1")
        monkeypatch.setenv("DISPATCH_PUBLIC_URL", public)
        monkeypatch.setenv("DISPATCH_PORT", str(server.port))
        tls = tmp_path / "tls"
        assert main(["deploy", "ca", "--out", str(tls), "--name", addr]) == 0
        site = tmp_path / "site.conf"
        assert main(["deploy", "nginx", "--cert", str(tls / "server.crt"), "--key",
                     str(tls / "server.key"), "--listen", f"{addr}:{port}",
                     "--out", str(site)]) == 0  # fmt: skip
        prefix = tmp_path / "nginx"
        args = nginx_args(nginx, prefix, nginx_conf(prefix, site))
        check_config([*args, "-t"])
        home = tmp_path / "home"
        trust_in_profile(home, tls / "ca.crt")
        wrapper = tmp_path / "chromium-in-netns"
        wrapper.write_text(f'#!/bin/sh\nHOME={home} exec {IP} netns exec {pair.netns} '
                           f'{CHROMIUM} "$@"\n')  # fmt: skip
        wrapper.chmod(0o755)

        log = tmp_path / "nginx.out"
        village, town = cast.village_a1, cast.town_a
        with running([*args, "-g", "daemon off;"], log) as proc, on_loopback():
            await until_listening(port, proc, log, host=addr)
            operator = Client("operator", "blue", light=True)
            try:
                async with (
                    ClientSession() as http,
                    chromium(tmp_path / "village", executable=wrapper) as ctx,
                ):
                    direct = f"http://127.0.0.1:{server.port}"  # the operator, on this side
                    town_token = bearer(make_token(settings, town))
                    resp = await http.post(f"{direct}/api/v1/calls", headers=town_token,
                                           json={"callees": [village], "kind": "inspection"})
                    assert resp.status == 201, await resp.text()
                    call_id = (await resp.json())["call"]["id"]
                    operator.offer_as_operator(1)
                    resp = await http.post(f"{direct}/api/v1/calls/{call_id}/sdp",
                                           headers=town_token,
                                           json={"type": "offer", "sdp": await operator.offer()})
                    assert resp.status == 200, await resp.text()
                    await operator.accept((await resp.json())["sdp"])

                    page = await ctx.new_page()
                    with pytest.raises(PlaywrightError):  # the app itself is out of reach
                        await page.goto(f"http://{addr}:{server.port}/login", timeout=10_000)
                    await log_in(page, public, village, "village-demo-2026")
                    assert await page.evaluate("window.isSecureContext && !!navigator.mediaDevices")
                    await page.goto(f"{public}/calls/{call_id}")
                    await page.get_by_role("button", name="接听").click()
                    state = page.get_by_test_id("call-state")
                    await state.filter(has_text="通话中").wait_for(timeout=WAIT)
                    await eventually(lambda: bool(operator.frames) and operator.frames[0] > 30,
                                     within=60)  # the operator sees the village  # fmt: skip
            finally:
                await operator.close()

    access = (prefix / "access.log").read_text()
    through = [line for line in access.splitlines() if line.startswith(f"{pair.peer_addr} ")]
    assert any("POST /login" in line for line in through), access[-2000:]
    assert any(f"/ws/calls/{call_id}" in line and '" 101 ' in line for line in through), \
        access[-2000:]  # the call page's WebSocket, upgraded through nginx
    assert any(f"/api/v1/calls/{call_id}/sdp" in line for line in through)
