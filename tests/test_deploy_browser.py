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

The second case is a village whose UDP to the media host is blocked (an nftables rule
in its namespace drops every datagram to 10.231.x.1 but those to the TURN port): coturn,
from the file `dispatch deploy turnserver` wrote, listens and relays on 10.231.x.1; the
page gets its credential from the service (GET /api/v1/calls/{id}/ice), its selected
candidate pair is a relay one, the rule has dropped the direct tries, and the operator
still receives the village's video.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from deploy_daemons import (
    binary,
    check_config,
    nginx_args,
    nginx_conf,
    running,
    until_listening,
)
from linkemu import SEARCH
from netns_pair import IP, Pair, veth_namespace
from playwright.async_api import Error as PlaywrightError
from ports import free_port

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


# The type of the local candidate of the page's selected candidate pair.
SELECTED_LOCAL = """async () => {
  const stats = await window.dispatchPeer.getStats();
  let pair = null;
  stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId)
    pair = stats.get(s.selectedCandidatePairId); });
  return pair ? stats.get(pair.localCandidateId).candidateType : "";
}"""


def block_udp_but_turn(pair: Pair, turn_port: int) -> str:
    """Drops, inside the namespace, every UDP datagram to the host side but TURN's."""
    nft = shutil.which("nft", path=SEARCH)
    if nft is None:
        pytest.skip("needs nft (Debian's nftables: `make system-deps`)")
    table = f"pa_turnonly_{pair.host[3:]}"
    rules = (f"table inet {table} {{\n  chain out {{\n"
             f"    type filter hook output priority 0; policy accept;\n"
             f"    ip daddr {pair.host_addr} udp dport != {turn_port} counter drop\n"
             f"  }}\n}}\n")  # fmt: skip
    done = subprocess.run(list(pair.in_ns(nft, "-f", "-")), input=rules, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return table


def dropped(pair: Pair, table: str) -> int:
    nft = shutil.which("nft", path=SEARCH) or "nft"
    listing = subprocess.run(list(pair.in_ns(nft, "list", "table", "inet", table)),
                             capture_output=True, text=True, timeout=30).stdout  # fmt: skip
    return int(listing.split("counter packets ")[1].split()[0])


@contextmanager
def coturn(pair: Pair, port: int, tmp: Path, turnserver: str) -> Iterator[Path]:
    """coturn from `dispatch deploy turnserver`, listening and relaying on the host side."""
    conf = tmp / "turnserver.conf"
    assert main(["deploy", "turnserver", "--out", str(conf), "--port", str(port),
                 "--listen-ip", pair.host_addr, "--relay-ports", "41300-41500"]) == 0
    log = tmp / "turnserver.log"
    with running([turnserver, "-c", str(conf), "--pidfile", str(tmp / "turnserver.pid"),
                  "--log-file", "stdout", "--simple-log", "--userdb", str(tmp / "turndb")],
                 log) as proc:  # fmt: skip
        yield log
        assert proc.poll() is None, log.read_text()[-2000:]


@pytest.mark.parametrize("turn_only", [False, True], ids=["direct", "turn-only"])
async def test_a_village_browser_reaches_the_service_only_through_nginx_over_https(
    aiohttp_server: Any, demo_settings: Settings, cast: Cast, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, turn_only: bool,
) -> None:  # fmt: skip
    nginx = binary("nginx")
    turnserver = binary("turnserver") if turn_only else ""
    with veth_namespace("https") as pair:
        addr, port = pair.host_addr, free_port()
        public = f"https://{addr}:{port}"
        turn_port = free_port(socket.SOCK_DGRAM)
        relay = {"turn_urls": f"turn:{addr}:{turn_port}?transport=udp",
                 "turn_secret": secrets.token_urlsafe(24)} if turn_only else {}  # fmt: skip
        settings = demo_settings.with_(public_url=public, trusted_proxies="127.0.0.1",
                                       ice_hosts=f"{addr},127.0.0.1", cookie_secure=True,
                                       scheduler=False, **relay)  # fmt: skip
        for name, value in relay.items():
            monkeypatch.setenv(f"DISPATCH_{name.upper()}", value)
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
        with ExitStack() as stack:
            proc = stack.enter_context(running([*args, "-g", "daemon off;"], log))
            stack.enter_context(on_loopback())
            await until_listening(port, proc, log, host=addr)
            if turn_only:
                stack.enter_context(coturn(pair, turn_port, tmp_path, turnserver))
                table = block_udp_but_turn(pair, turn_port)
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

                    probe = await ctx.new_page()  # its error page must not cut in later
                    with pytest.raises(PlaywrightError):  # the app itself is out of reach
                        await probe.goto(f"http://{addr}:{server.port}/login", timeout=10_000)
                    await probe.close()
                    page = await ctx.new_page()
                    await log_in(page, public, village, "village-demo-2026")
                    assert await page.evaluate("window.isSecureContext && !!navigator.mediaDevices")
                    await page.goto(f"{public}/calls/{call_id}")
                    await page.get_by_role("button", name="接听").click()
                    state = page.get_by_test_id("call-state")
                    await state.filter(has_text="通话中").wait_for(timeout=WAIT)
                    await eventually(lambda: bool(operator.frames) and operator.frames[0] > 30,
                                     within=60)  # the operator sees the village  # fmt: skip
                    local = await page.evaluate(SELECTED_LOCAL)
                    if turn_only:
                        assert local == "relay", local
                        assert dropped(pair, table) > 0  # direct tries were made, and dropped
                    else:
                        assert local == "host", local
            finally:
                await operator.close()
                # The server's own peers hold allocations on coturn: they give them back
                # before it stops (after, each deletion waits out 63.5 s of STUN retries).
                await server.close()

    access = (prefix / "access.log").read_text()
    through = [line for line in access.splitlines() if line.startswith(f"{pair.peer_addr} ")]
    assert any("POST /login" in line for line in through), access[-2000:]
    assert any(f"/ws/calls/{call_id}" in line and '" 101 ' in line for line in through), \
        access[-2000:]  # the call page's WebSocket, upgraded through nginx
    assert any(f"/api/v1/calls/{call_id}/sdp" in line for line in through)
