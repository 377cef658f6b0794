"""UnifiedConfigurationManager: typed, layered, validated configuration.

Layers, lowest first: model defaults < TOML config file < ``.env`` file < ``NETRA_…``
environment variables (``__`` separates sections) < runtime overrides. Every effective value
remembers which layer it came from. Setting an invalid value changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from netra.env import IsolatedEnvironment, is_secret_key, mask, parse_env_file
from netra.errors import ConfigurationError
from netra.model_ids import ModelId
from netra.settings import LimitSettings, Settings, TierSettings
from netra.settings.agents import AgentSettings, McpServerSettings
from netra.settings.models import ProviderSettings

ENV_PREFIX = "NETRA_"
CONFIG_VARIABLE = "NETRA_CONFIG"
"""Names the TOML config file; read by the command line, never a setting itself."""
CLIENT_VARIABLES = frozenset({"NETRA_URL", "NETRA_API_KEY"})
"""Read by ``netra.client`` and ``netra chat`` (the server to reach, the key to reach it
with), never settings of the server: a shell may export them and still run ``netra serve``."""
NESTED_DELIMITER = "__"
MIN_SECRET_BYTES = 32
RELOADABLE = (
    "limits.",
    "tiers.",
    "models.default",
    "models.fallbacks",
    "models.prices",
    "models.context_windows",
    "models.default_context_window",
    "models.reserve_output_tokens",
    "models.history_messages",
    "models.summarize",
    "tools.",
    "agents.",
    "logging.level",
)
"""Settings a running server picks up from an edited config file; the rest need a restart."""
RESTART_ONLY = ("tools.mcp_servers",)
"""Exceptions inside the reloadable sections: connections are made at start."""
LIMIT_NAMES = frozenset(TierSettings.model_fields)
"""Limits that can be overridden per tier and per user."""
PROVIDER_FIELDS = frozenset(ProviderSettings.model_fields)
"""Keys of one ``models.providers.<name>`` entry, whatever the provider's name."""
MCP_SERVER_FIELDS = frozenset(McpServerSettings.model_fields)
"""Keys of one ``tools.mcp_servers.<name>`` entry."""
MCP_SERVER_MAPS = frozenset({"env", "headers"})
"""Keys of an MCP server entry that are tables of free-form names."""
AGENT_FIELDS = frozenset(AgentSettings.model_fields)
"""Keys of one ``agents.<name>`` entry."""

log = logging.getLogger(__name__)
_ABOVE_FILE = ("dotenv", "environment", "override")

Listener = Callable[[Settings, Settings, list[str]], None]
"""Called with ``(old, new, changed_paths)`` after every accepted change."""
Check = Callable[[Settings], None]
"""Raises ``ConfigurationError`` to refuse settings on grounds the settings alone cannot
judge (an agent naming a tool no registry holds)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One accepted change of the effective configuration."""

    at: datetime
    source: str
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a config file reload did."""

    applied: tuple[str, ...]
    """Changed settings now in effect."""
    restart_required: tuple[str, ...]
    """Changed settings that keep their old value until the server restarts."""


def is_reloadable(path: str) -> bool:
    return path.startswith(RELOADABLE) and not path.startswith(RESTART_ONLY)


@dataclass(slots=True)
class _Layers:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    """layer name → flat ``{dotted.path: raw value}``, in precedence order (insertion)."""


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)", re.I)


def mask_url(url: str) -> str:
    """``scheme://user:***@host/db``: a URL with its password hidden."""
    return _URL_PASSWORD.sub(r"\g<head>***", url)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


_NOT_SETTINGS = CLIENT_VARIABLES | {CONFIG_VARIABLE}


def _from_environment(variables: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, raw in variables.items():
        if not key.upper().startswith(ENV_PREFIX) or key.upper() in _NOT_SETTINGS:
            continue
        path = ".".join(part.lower() for part in key[len(ENV_PREFIX) :].split(NESTED_DELIMITER))
        value: Any = raw
        if raw[:1] in ("[", "{"):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        flat[path] = value
    return flat


def _known(path: str) -> bool:
    if path in _DEFAULT_PATHS:
        return True
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "tiers":
        return parts[2] in LIMIT_NAMES
    if len(parts) == 3 and parts[0] == "agents":
        return parts[2] in AGENT_FIELDS
    if parts[:2] == ["tools", "mcp_servers"] and len(parts) >= 4:
        if len(parts) == 5:
            return parts[3] in MCP_SERVER_MAPS
        return len(parts) == 4 and parts[3] in MCP_SERVER_FIELDS
    return len(parts) == 4 and parts[:2] == ["models", "providers"] and parts[3] in PROVIDER_FIELDS


_DEFAULT_PATHS = frozenset(_flatten(Settings().model_dump()))


class UnifiedConfigurationManager:
    """Owns the effective ``Settings`` of one application and every change to it."""

    def __init__(
        self,
        env: IsolatedEnvironment,
        *,
        config_file: Path | None = None,
        env_file: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._env = env
        self._config_file = config_file
        self._env_file = env_file
        self._lock = threading.RLock()
        self._layers = _Layers()
        self._listeners: list[Listener] = []
        self._checks: list[Check] = []
        self._file_mtime = self._mtime()
        self.history: list[Change] = []
        """Accepted changes, oldest first."""
        self._layers.values["default"] = _flatten(Settings().model_dump())
        self._layers.values["file"] = self._read_config_file()
        self._layers.values["dotenv"] = self._read_env_file()
        self._layers.values["environment"] = _from_environment(env.as_dict())
        self._layers.values["override"] = _flatten(dict(overrides or {}))
        self._settings = self._build(self._layers)

    # ---- layers --------------------------------------------------------------------------
    def _read_config_file(self) -> dict[str, Any]:
        if self._config_file is None:
            return {}
        try:
            with self._config_file.open("rb") as handle:
                return _flatten(tomllib.load(handle))
        except FileNotFoundError as exc:
            raise ConfigurationError(f"config file not found: {self._config_file}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config file {self._config_file} is not TOML: {exc}") from exc

    def _read_env_file(self) -> dict[str, Any]:
        if self._env_file is None:
            return {}
        values, problems = parse_env_file(self._env_file)
        if problems:
            lines = "; ".join(f"line {p.line}: {p.reason}" for p in problems)
            raise ConfigurationError(f"{self._env_file}: {lines}")
        return _from_environment(values)

    def _build(self, layers: _Layers) -> Settings:
        merged: dict[str, Any] = {}
        for values in layers.values.values():
            merged.update(values)
        unknown = sorted(path for path in merged if not _known(path))
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        try:
            settings = Settings.model_validate(_unflatten(merged))
        except ValidationError as exc:
            raise ConfigurationError(self._describe(exc, merged)) from None
        for check in self._checks:
            check(settings)
        return settings

    @staticmethod
    def _describe(exc: ValidationError, merged: Mapping[str, Any]) -> str:
        problems = []
        for error in exc.errors():
            path = ".".join(str(part) for part in error["loc"])
            raw = merged.get(path)
            if path not in merged:  # a table checked as a whole: the message names the key
                problems.append(f"{path}: {error['msg']}")
                continue
            shown = mask(str(raw)) if is_secret_key(path) and raw is not None else repr(raw)
            problems.append(f"{path}={shown}: {error['msg']}")
        return "invalid settings: " + "; ".join(problems)

    # ---- reading -------------------------------------------------------------------------
    @property
    def config_file(self) -> Path | None:
        return self._config_file

    @property
    def env(self) -> IsolatedEnvironment:
        """The environment the settings were read from; child processes start from it."""
        return self._env

    @property
    def settings(self) -> Settings:
        with self._lock:
            return self._settings

    def source(self, path: str) -> str:
        """The layer the effective value of ``path`` came from."""
        with self._lock:
            found = "default"
            for name, values in self._layers.values.items():
                if path in values:
                    found = name
            if found == "file" and self._config_file is not None:
                return f"file:{self._config_file}"
            if found == "dotenv" and self._env_file is not None:
                return f"dotenv:{self._env_file}"
            return found

    def describe(self) -> list[tuple[str, str, str]]:
        """``(path, masked value, source)`` for every setting: safe to print."""
        flat = _flatten(self.settings.model_dump())
        rows = []
        for path in sorted(flat):
            value = flat[path]
            secret = isinstance(value, SecretStr)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            text = "" if value is None else str(value)
            if (secret or is_secret_key(path)) and text:
                text = mask(text)
            elif path.endswith("url") and text:
                text = mask_url(text)
            rows.append((path, text, self.source(path)))
        return rows

    def problems(self) -> list[str]:
        """Every reason the settings are unsafe for their environment (empty when fine)."""
        settings = self.settings
        found: list[str] = []
        if settings.environment in ("production", "staging"):
            secret = settings.auth.jwt_secret
            if secret is None:
                found.append("auth.jwt_secret must be set")
            elif len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                found.append(f"auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes")
            if settings.database.echo:
                found.append("database.echo must be off")
            if settings.logging.level == "DEBUG":
                found.append("logging.level must not be DEBUG")
            # OWASP's floor for argon2id: 19 MiB and two passes.
            if settings.auth.password_memory_kib < 19_456:
                found.append("auth.password_memory_kib must be at least 19456")
            if settings.auth.password_time_cost < 2:
                found.append("auth.password_time_cost must be at least 2")
            if settings.faults.crash_at:
                found.append("faults.crash_at must be empty (it is for tests)")
        models = settings.models
        for model_id in dict.fromkeys([models.default, *models.fallbacks]):
            name = ModelId.parse(model_id).provider
            provider = models.providers.get(name) if name is not None else None
            if provider is not None and provider.api_key is None and not provider.urls:
                found.append(f"models.providers.{name}.api_key must be set to use {model_id}")
        return found

    def check(self) -> None:
        """Raise ``ConfigurationError`` listing every problem at once."""
        found = self.problems()
        if found:
            raise ConfigurationError(
                f"unsafe settings for {self.settings.environment}: " + "; ".join(found)
            )

    # ---- changing ------------------------------------------------------------------------
    def set(self, path: str, value: Any, *, source: str = "override") -> Settings:
        """Validate and apply one runtime override; an invalid value changes nothing."""
        return self.update({path: value}, source=source)

    def update(self, values: Mapping[str, Any], *, source: str = "override") -> Settings:
        with self._lock:
            candidate = _Layers({name: dict(layer) for name, layer in self._layers.values.items()})
            candidate.values["override"].update(values)
            new = self._build(candidate)
            old = self._settings
            self._layers, self._settings = candidate, new
            before = _flatten(old.model_dump())
            changed = sorted(
                path
                for path, value in _flatten(new.model_dump()).items()
                if before.get(path) != value
            )
            if changed:
                self.history.append(Change(datetime.now(UTC), source, tuple(changed)))
            listeners = list(self._listeners)
        if changed:
            for listener in listeners:
                listener(old, new, changed)
        return new

    def on_change(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def add_check(self, check: Check) -> None:
        """Judge the current settings with ``check`` now (its ``ConfigurationError``
        propagates), then every change before it is accepted: a change it refuses changes
        nothing, like any invalid value."""
        with self._lock:
            check(self._settings)
            self._checks.append(check)

    # ---- scoped limits -------------------------------------------------------------------
    def limits_for(self, tier: str, overrides: Mapping[str, Any] | None = None) -> LimitSettings:
        """The limits in force for one user: its own ``overrides`` (stored with the account,
        ``UserExecutionContext.limits``) > its tier's > the global ``limits``. An override
        of a limit no longer known is ignored."""
        settings = self.settings
        values = settings.limits.model_dump()
        tier_settings = settings.tiers.get(tier)
        if tier_settings is not None:
            values.update(tier_settings.model_dump(exclude_none=True))
        if overrides:
            values.update({k: v for k, v in overrides.items() if k in LIMIT_NAMES})
        return LimitSettings.model_validate(values)

    # ---- hot reload ----------------------------------------------------------------------
    def _mtime(self) -> float | None:
        if self._config_file is None:
            return None
        try:
            return self._config_file.stat().st_mtime_ns / 1e9
        except OSError:
            return None

    def reload(self) -> ReloadReport:
        """Re-read the config file: reloadable changes apply, the rest wait for a restart.
        An invalid file changes nothing and raises ``ConfigurationError``."""
        with self._lock:
            self._file_mtime = self._mtime()
            fresh = self._read_config_file()
            old_file = self._layers.values["file"]
            changed = {p for p in set(fresh) | set(old_file) if fresh.get(p) != old_file.get(p)}
            later = [v for name, v in self._layers.values.items() if name in _ABOVE_FILE]
            shadowed = {p for p in changed if any(p in layer for layer in later)}
            restart = sorted(p for p in changed - shadowed if not is_reloadable(p))
            new_file = {p: v for p, v in fresh.items() if is_reloadable(p)}
            new_file |= {p: v for p, v in old_file.items() if not is_reloadable(p)}
            candidate = _Layers(dict(self._layers.values))
            candidate.values["file"] = new_file
            new = self._build(candidate)
            old = self._settings
            self._layers, self._settings = candidate, new
            applied = sorted(p for p in changed - shadowed if is_reloadable(p))
            if applied:
                self.history.append(
                    Change(datetime.now(UTC), f"file:{self._config_file}", tuple(applied))
                )
            listeners = list(self._listeners)
        if applied:
            for listener in listeners:
                listener(old, new, applied)
        return ReloadReport(tuple(applied), tuple(restart))

    def file_changed(self) -> bool:
        """True when the config file was modified since it was last read."""
        return self._config_file is not None and self._mtime() != self._file_mtime

    async def watch(self, interval_s: float = 1.0) -> None:
        """Reload the config file whenever it changes, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.file_changed():
                continue
            try:
                report = self.reload()
            except ConfigurationError as exc:
                log.error("config file not reloaded: %s", exc.message)
                continue
            if report.applied:
                log.info("config reloaded: %s", ", ".join(report.applied))
            if report.restart_required:
                log.warning("config changes need a restart: %s", ", ".join(report.restart_required))
