from __future__ import annotations

from pathlib import Path

import pytest

from dispatch.errors import InvalidInput
from dispatch.settings import Settings, documented_settings, publish_limits

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [env for _name, env, _help, _default in documented_settings() if env not in text]
    assert missing == []


def test_environment_then_overrides() -> None:
    s = Settings.from_env(
        env={"DISPATCH_PORT": "9000", "DISPATCH_DB": "sqlite:///x.db"}, db_url="sqlite:///y.db"
    )
    assert s.port == 9000 and s.db_url == "sqlite:///y.db"


def test_a_bad_number_names_the_variable() -> None:
    with pytest.raises(InvalidInput, match="DISPATCH_PORT"):
        Settings.from_env(env={"DISPATCH_PORT": "eighty"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DISPATCH_VIDEO_FPS", "0"), ("DISPATCH_VIDEO_FPS", "61"), ("DISPATCH_VIDEO_KBPS", "99")],
)
def test_a_publishing_cap_out_of_range_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(InvalidInput, match=variable):
        publish_limits(Settings.from_env(env={variable: value}))
    assert publish_limits(Settings.from_env(env={})) == (15, 800_000)


def test_session_key_is_created_once_and_private(tmp_path: Path) -> None:
    s = Settings.from_env(env={}, data_dir=str(tmp_path / "d"))
    key = s.session_key()
    assert key == s.session_key() and len(key) == 44
    assert (tmp_path / "d" / "secret.key").stat().st_mode & 0o077 == 0


def test_a_malformed_secret_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="DISPATCH_SECRET"):
        Settings.from_env(env={"DISPATCH_SECRET": "short"}).session_key()
