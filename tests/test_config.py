"""Configuration in one place: every setting a field of Settings, read from KB_*, documented in the README."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from kb.config import PROJECT_ROOT, Settings


def test_every_setting_is_read_from_its_variable_and_flags_win():
    env = {"KB_HOME": "/tmp/somewhere", "KB_MAX_FILE_MB": "7", "KB_LLM": "ollama:x", "KB_DEVICE": "cuda", "KB_NOT_A_SETTING": "1"}
    s = Settings.from_env(env, home=Path("/tmp/flag"))
    assert s.home == Path("/tmp/flag") and s.max_file_mb == 7 and s.llm == "ollama:x" and s.device == "cuda"
    assert Settings.from_env({}).model == "" and Settings.from_env({}).k == 5


def test_every_setting_is_documented_in_the_readme_table():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("| `KB_")]
    documented = set(re.findall(r"`(KB_[A-Z_]+)`", "\n".join(table)))
    assert documented == {f"KB_{f.name.upper()}" for f in fields(Settings)}


def test_no_code_reads_a_kb_variable_that_is_not_a_setting():
    settings = {f"KB_{f.name.upper()}" for f in fields(Settings)}
    read = set()
    for path in [*PROJECT_ROOT.glob("kb/**/*.py"), *PROJECT_ROOT.glob("ingest/*.py"), PROJECT_ROOT / "app.py"]:
        read |= set(re.findall(r"environ(?:\.get\(|\[)\s*[\"'](KB_[A-Z_]+)", path.read_text(encoding="utf-8")))
    assert read <= settings, read - settings


def test_sign_in_settings_are_written_under_kb_home_for_the_owner_only(tmp_path):
    import stat
    import tomllib

    from kb.ui.auth import write_secrets

    s = Settings(home=tmp_path / "home", auth="https://login.example.org/realms/kb/", auth_client_secret='a"b')
    path = write_secrets(s, "https://kb.example.org/")
    assert path.parent == s.auth_dir and stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = tomllib.loads(path.read_text())["auth"]
    assert auth["redirect_uri"] == "https://kb.example.org/oauth2callback"
    assert auth["server_metadata_url"] == "https://login.example.org/realms/kb/.well-known/openid-configuration"
    assert auth["client_secret"] == 'a"b' and auth["client_id"] == "syslead-kb"
    first = auth["cookie_secret"]
    assert len(first) >= 32 and tomllib.loads(write_secrets(s, "https://kb.example.org").read_text())["auth"]["cookie_secret"] == first
