"""The `dispatch` command line: exit codes, messages, and a real `serve`. Tests that
need the demo district start from a copy of the session's (`demo_settings`);
`demo load` itself is tested on an empty database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ports import free_port as _free_port

from dispatch.settings import Settings
from web.cli import main

BIN = Path(sys.executable).parent / "dispatch"


def run(settings: Settings, *argv: str, stdin: str | None = None, monkeypatch=None) -> int:  # type: ignore[no-untyped-def]
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(["--db", settings.db_url, "--data-dir", settings.data_dir, *argv])


def test_usage_errors_exit_2(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert run(settings, "frobnicate") == 2
    assert run(settings, "centers", "list", "--level", "city") == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "Traceback" not in err


def test_demo_load_then_list(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "demo", "load") == 0
    out = capsys.readouterr().out
    assert "511703000000" in out and "district-demo-2026" in out
    assert run(settings, "demo", "load") == 2
    assert "already holds" in capsys.readouterr().err
    assert run(settings, "demo", "load", "--if-empty") == 0
    capsys.readouterr()
    assert run(settings, "centers", "list", "--under", "511703000000", "--level", "town") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert 18 <= len(lines) <= 22 and all("town" in line for line in lines)
    # The flags work after the subcommand too.
    assert main(["centers", "list", "--json", "--db", settings.db_url, "--level", "district"]) == 0
    assert '"name": "达川区"' in capsys.readouterr().out


def test_bad_codes_and_databases_exit_2(settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(settings, "centers", "list", "--under", "12") == 2
    assert "--under" in capsys.readouterr().err
    assert run(settings, "centers", "list", "--under", "999999999999") == 2
    assert "999999999999" in capsys.readouterr().err
    assert main(["--db", "mysql://nowhere/x", "centers", "list"]) == 2
    assert "unsupported database" in capsys.readouterr().err


@pytest.mark.usefixtures("demo_settings")  # the demo district in settings.db_url
def test_import_reports_the_bad_row_and_imports_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "all.csv"
    assert run(settings, "centers", "export", str(exported)) == 0
    capsys.readouterr()
    good = tmp_path / "good.csv"
    good.write_text(
        "code,name,level,parent_code,class\n511703100901,新建村,village,511703100000,follow-on\n",
        encoding="utf-8",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,level,parent_code,class\n"
        "511703100902,又一村,village,511703100000,follow-on\n"
        "511703100903,孤村,village,511703999000,follow-on\n",
        encoding="utf-8",
    )
    assert run(settings, "centers", "import", str(bad)) == 2
    err = capsys.readouterr().err
    assert "line 3, column parent_code" in err and "nothing was imported" in err
    after = tmp_path / "after.csv"
    assert run(settings, "centers", "export", str(after)) == 0
    assert after.read_bytes() == exported.read_bytes()
    assert run(settings, "centers", "import", str(good)) == 0
    assert "1 created" in capsys.readouterr().out
    assert run(settings, "centers", "import", str(tmp_path / "missing.csv")) == 2
    assert run(settings, "centers", "import", str(tmp_path / "notes.txt")) == 2
    assert "--format" in capsys.readouterr().err


@pytest.mark.usefixtures("demo_settings")  # the demo district in settings.db_url
def test_users_add(settings: Settings, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    args = (
        "users",
        "add",
        "--username",
        "wang.li",
        "--role",
        "town_operator",
        "--centre",
        "511703100000",
        "--password-stdin",
    )
    assert run(settings, *args, stdin="a-good-password\n", monkeypatch=monkeypatch) == 0
    assert "added wang.li" in capsys.readouterr().out
    assert run(settings, *args, stdin="a-good-password\n", monkeypatch=monkeypatch) == 2
    assert "taken" in capsys.readouterr().err
    wrong_level = (
        "users",
        "add",
        "--username",
        "zhao",
        "--role",
        "village",
        "--centre",
        "511703100000",
        "--password-stdin",
    )
    assert run(settings, *wrong_level, stdin="a-good-password\n", monkeypatch=monkeypatch) == 2
    assert "needs a village centre" in capsys.readouterr().err
    short = ("users", "add", "--username", "qian", "--role", "admin", "--password-stdin")
    assert run(settings, *short, stdin="short\n", monkeypatch=monkeypatch) == 2
    assert "password" in capsys.readouterr().err


def test_the_installed_command_exits_2_without_a_traceback(settings: Settings) -> None:
    proc = subprocess.run(
        [str(BIN), "--db", settings.db_url, "centers", "list", "--under", "abc"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--under" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.usefixtures("demo_settings")  # the demo district in settings.db_url
def test_serve_prints_the_login_url_and_demo_logins(settings: Settings) -> None:
    port = _free_port()
    # Media in the server's own process (worker processes: tests/test_offline_install.py).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DISPATCH_MEDIA_WORKERS": "0"}
    proc = subprocess.Popen(
        [
            str(BIN),
            "serve",
            "--db",
            settings.db_url,
            "--data-dir",
            settings.data_dir,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        # Not a speed check: a loaded 2-core machine takes over 30 s to import and start
        # (it did, in the parallel pass, beside a benchmark).
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl+C" in line:
                break
        text = "".join(lines)
        assert f"http://localhost:{port}/login" in text
        assert "511703000000" in text and "district-demo-2026" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.usefixtures("demo_settings")  # the demo district in settings.db_url
def test_demo_history(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "demo", "history", "--weeks", "2", "--end-week", "2026-W46") == 0
    assert "调度 calls:" in capsys.readouterr().out  # a readable summary
    assert run(settings, "demo", "history", "--weeks", "0") == 2
    assert run(settings, "demo", "history", "--weeks", "1", "--end-week", "2999-W01") == 2
    assert run(settings, "rota", "build", "--week", "2026-W50", "--seed", "-1") == 2
