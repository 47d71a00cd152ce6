"""Offline install (issue 12 item 4): `make wheelhouse` gathers every wheel the lock
names plus this project's; a fresh venv installs from that folder alone (`pip
--no-index`, hashes required, no pip configuration or cache) and `dispatch serve`,
started outside the source tree, answers /healthz, /readyz (with a media worker
process: the installed `media` package, not this checkout's) and the login page with
its stylesheet (templates and static files are in the wheel) on a free port.

The wheelhouse is kept between runs in WHEELHOUSE_CACHE (one folder per lock: its
hash names it), so CI downloads the ~170 MB once; `make wheelhouse` reuses the wheels
already there and always rebuilds this project's own wheel. Marked `offline_install`:
`pytest -m offline_install` runs it alone, `-m "not offline_install"` leaves it out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ports import free_port

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pingan-dispatch"
START_WITHIN = 180.0  # seconds for the installed server to answer (a loaded 2-core machine)

pytestmark = [pytest.mark.offline_install, pytest.mark.timeout(1500)]


def wheelhouse_dir() -> Path:
    given = os.environ.get("WHEELHOUSE_CACHE")
    if given:
        return Path(given)
    return CACHE / f"wheelhouse-{hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]}"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without pip's settings or this checkout's venv: the machine's
    pip configuration (extra indexes, find-links) must not help the install."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "DISPATCH_", "VIRTUAL_ENV", "PYTHON"))}  # fmt: skip
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)  # fmt: skip
    return env


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done  # type: ignore[no-any-return]


def test_install_from_the_wheelhouse_alone_and_serve(tmp_path: Path) -> None:
    house = wheelhouse_dir()
    run(["make", "-C", str(ROOT), "wheelhouse", f"WHEELHOUSE={house}"])
    wheels = sorted(p.name for p in house.glob("*.whl"))
    assert any(name.startswith("pingan_dispatch-") for name in wheels)
    run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=house)

    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(venv)], env=clean_env())
    # --no-compile: byte-compiling every installed module took half the install's time;
    # the server compiles what it imports when it starts.
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-compile",
           "--find-links", str(house)]  # fmt: skip
    run([*pip, "--require-hashes", "-r", str(house / "requirements.lock")],
        env=clean_env(), cwd=tmp_path)  # fmt: skip
    ours = next(house.glob("pingan_dispatch-*.whl"))
    run([*pip, "--no-deps", str(ours)], env=clean_env(), cwd=tmp_path)
    run([str(venv / "bin" / "python"), "-m", "pip", "check"], env=clean_env(), cwd=tmp_path)
    where = run([str(venv / "bin" / "python"), "-c", "import web; print(web.__file__)"],
                env=clean_env(), cwd=tmp_path).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(venv), where  # the installed package, not the checkout

    port = free_port()
    env = clean_env(DISPATCH_DB=f"sqlite:///{tmp_path / 'dispatch.db'}",
                    DISPATCH_DATA=str(tmp_path / "data"), DISPATCH_MEDIA_WORKERS="1",
                    DISPATCH_SCHEDULER="1")  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(venv / "bin" / "dispatch"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_WITHIN
        base_url = f"http://127.0.0.1:{port}"
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if get(f"{base_url}/healthz") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the installed server did not answer"
            time.sleep(0.5)
        while get(f"{base_url}/readyz") != 200:  # the media worker comes up too
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        assert get(f"{base_url}/login") == 200  # templates and static files are in the wheel
        assert get(f"{base_url}/static/app.css") == 200
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    shutil.rmtree(venv, ignore_errors=True)
