"""Settings from a TOML file (dispatch/config_file.py): every setting can be set there,
flags > environment > file > defaults, and a bad file exits with code 2 naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import fields
from pathlib import Path

import pytest
from ports import free_port as _free_port

from dispatch import config_file
from dispatch.errors import InvalidInput
from dispatch.settings import Settings
from web.cli import main

BIN = Path(sys.executable).parent / "dispatch"
README = Path(__file__).resolve().parent.parent / "README.md"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string is a JSON string


def _other(value: object) -> object:
    """A value of the same type as a default, but not it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, float):
        return value + 1.5
    return "7" if value in ("auto", "40") else f"{value}-from-file"


def test_every_setting_can_be_set_in_the_file(tmp_path: Path) -> None:
    wanted = {f.name: _other(f.default) for f in fields(Settings)}
    path = tmp_path / "dispatch.toml"
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in wanted.items()), "utf-8")
    settings = Settings.from_env(env={}, file=config_file.load(path))
    assert {k: getattr(settings, k) for k in wanted} == wanted


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    path = tmp_path / "dispatch.toml"
    path.write_text('port = 9001\nhost = "10.0.0.1"\ndb_url = "sqlite:///file.db"\n', "utf-8")
    s = Settings.from_env(
        env={"DISPATCH_HOST": "10.0.0.2", "DISPATCH_DB": "sqlite:///env.db"},
        file=config_file.load(path),
        db_url="sqlite:///flag.db",
    )
    assert (s.db_url, s.host, s.port, s.log_level) == ("sqlite:///flag.db", "10.0.0.2", 9001,
                                                       "INFO")  # fmt: skip


def test_a_number_is_taken_for_the_worker_counts(tmp_path: Path) -> None:
    path = tmp_path / "dispatch.toml"
    path.write_text("media_workers = 0\nmedia_span_at = 12\n", "utf-8")
    assert config_file.load(path) == {"media_workers": "0", "media_span_at": "12"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("prot = 8080\n", "prot: no such setting"),
        ("[server]\nport = 8080\n", "server: no such setting"),
        ('port = "8080"\n', "port: expected a whole number"),
        ("port = 80.5\n", "port: expected a whole number"),
        ("scheduler = 1\n", "scheduler: expected true or false"),
        ('cookie_secure = "yes"\n', "cookie_secure: expected true or false"),
        ("public_url = 8080\n", "public_url: expected a string"),
        ("media_workers = true\n", "media_workers: expected a string"),
        ("header_timeout = 0\n", "header_timeout: expected seconds above 0"),
        ("port = \n", "not a TOML file"),
    ],
)
def test_a_bad_file_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(InvalidInput, match=named):
        config_file.load(path)
    db = f"sqlite:///{tmp_path / 'd.db'}"
    assert main(["--config", str(path), "--db", db, "db", "status"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and named in err
    assert main(["db", "status", "--db", db, "--config", str(tmp_path / "none.toml")]) == 2
    assert "cannot read the settings file" in capsys.readouterr().err


def test_the_readme_states_the_file_and_its_keys() -> None:
    text = README.read_text(encoding="utf-8")
    assert "--config FILE" in text and "DISPATCH_CONFIG" in text
    missing = [f.name for f in fields(Settings) if f"`{f.name}`" not in text]
    assert missing == []


def test_serve_reads_its_settings_from_the_file(tmp_path: Path) -> None:
    """A real `dispatch serve` with nothing but --config: it listens on the file's port,
    uses the file's database and data folder, runs no scheduler and no media workers."""
    port = _free_port()
    db = tmp_path / "from-file.db"
    path = tmp_path / "dispatch.toml"
    path.write_text(
        f'db_url = "sqlite:///{db}"\ndata_dir = "{tmp_path / "data"}"\nport = {port}\n'
        'scheduler = false\nmedia_workers = 0\nice_hosts = "127.0.0.1"\n',
        "utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    proc = subprocess.Popen([str(BIN), "serve", "--config", str(path)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        body = b""
        deadline = time.monotonic() + 100  # not a speed check: a busy machine starts slowly
        while time.monotonic() < deadline and proc.poll() is None and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    body = r.read()
            except OSError:
                time.sleep(0.2)
        ready = json.loads(body)
        text = json.dumps(ready)
        assert "disabled" in text and "in process" in text
        assert db.exists() and (tmp_path / "data" / "secret.key").exists()
        assert not (tmp_path / "var").exists()  # the defaults were not used
    finally:
        proc.terminate()
        proc.wait(timeout=30)
