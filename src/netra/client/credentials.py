"""Where ``netra chat`` keeps a signed-in session between runs: one JSON file in the user's
config directory, readable by the user alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from netra.client.models import Tokens


def default_path() -> Path:
    """``$XDG_CONFIG_HOME/netra/credentials.json`` (``~/.config`` without it)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "netra" / "credentials.json"


class CredentialStore:
    """Tokens by server URL: ``{"servers": {url: {email, access_token, refresh_token}}}``.
    Written whole to a new file of mode 0600, then moved into place, so the file is never
    half-written nor, for a moment, readable by others."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, url: str) -> tuple[str, Tokens] | None:
        """The email and tokens saved for ``url``, if any."""
        entry = self._read().get(url)
        if not isinstance(entry, dict):
            return None
        return entry["email"], Tokens(entry["access_token"], entry.get("refresh_token"))

    def save(self, url: str, email: str, tokens: Tokens) -> None:
        servers = self._read()
        servers[url] = {
            "email": email,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(file.fileno(), 0o600)  # an older file's mode, or a umask, is not ours
            json.dump({"servers": servers}, file, indent=2)
        temporary.replace(self.path)

    def _read(self) -> dict[str, Any]:
        try:
            servers = json.loads(self.path.read_text())["servers"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        return servers if isinstance(servers, dict) else {}
