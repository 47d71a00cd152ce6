"""Real nginx and coturn for the deployment tests: found (Debian's packages, installed by
`make system-deps`), started from the files `dispatch deploy` wrote with their own pid,
log and temp paths under the test's folder — never the system services — on 127.0.0.1,
and stopped by their own process id."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def binary(name: str) -> str:
    """The program's path, or skip the test saying how to get it."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        pytest.skip(f"{name} is not installed: `make system-deps` installs it (needs root)")
    return found


def nginx_conf(prefix: Path, site: Path) -> Path:
    """A main nginx.conf around the generated site, everything it writes under `prefix`."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers may read the tmp folder
    conf = prefix / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
""")
    return conf


def nginx_args(nginx: str, prefix: Path, conf: Path) -> list[str]:
    return [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def check_config(args: list[str]) -> str:
    """Runs the program's configuration check (`nginx -t`); its output, or the test fails."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@contextmanager
def running(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The program in the foreground, stopped (by its pid) when the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def until_listening(port: int, proc: subprocess.Popen[bytes], log: Path,
                          within: float = 20.0, host: str = "127.0.0.1") -> None:  # fmt: skip
    """Waits for a TCP listener on host:port; fails with the program's log if it exits
    or never listens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited {proc.returncode}:\n{_tail(log)}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                pytest.fail(f"nothing listens on {port}:\n{_tail(log)}")
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
