"""Sign-in for a shared deployment: the ``[auth]`` secrets Streamlit's ``st.login`` reads, written from
``KB_AUTH`` (an OpenID Connect issuer) under ``KB_HOME/auth``, never into the repository.

Without ``KB_AUTH`` (one laptop) nothing here is used and every page stays open.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

from kb.config import Settings

DISCOVERY = "/.well-known/openid-configuration"


def metadata_url(issuer: str) -> str:
    """The provider's discovery document, from its issuer URL (or the document's own URL)."""
    issuer = issuer.strip().rstrip("/")
    return issuer if issuer.endswith(DISCOVERY) else issuer + DISCOVERY


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created so: never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(text)


def cookie_secret(folder: Path) -> str:
    """The secret that signs the sign-in cookie: made once per ``KB_HOME``, readable by its owner only."""
    path = folder / "cookie-secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def auth_section(settings: Settings, app_url: str, secret: str) -> dict[str, str]:
    """What ``st.login`` needs: where to return after sign-in, the cookie's secret and the provider."""
    return {"redirect_uri": app_url.rstrip("/") + "/oauth2callback", "cookie_secret": secret,
            "client_id": settings.auth_client_id, "client_secret": settings.auth_client_secret,
            "server_metadata_url": metadata_url(settings.auth)}


def toml(section: str, values: dict[str, str]) -> str:
    # TOML's basic strings take JSON's escapes.
    return f"[{section}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def write_secrets(settings: Settings, app_url: str) -> Path:
    """Write the ``[auth]`` secrets for this deployment and return the file Streamlit should read."""
    path = settings.auth_dir / "secrets.toml"
    write_private(path, toml("auth", auth_section(settings, app_url, cookie_secret(settings.auth_dir))))
    return path


def record_change(settings: Settings, user: str, action: str, what: str) -> None:
    """Append who changed what to ``KB_HOME/auth/changes.jsonl``: a shared base keeps its changes' authors."""
    settings.auth_dir.mkdir(parents=True, exist_ok=True)
    line = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "user": user, "action": action, "what": what}
    with (settings.auth_dir / "changes.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
