"""IsolatedEnvironment: the one gateway to environment variables.

Nothing else in ``netra`` reads ``os.environ``. ``get_env()`` returns the process-wide
instance, which reads through to the real environment; it is the one process-wide object in
Netra, because the environment it wraps is process-wide itself. ``IsolatedEnvironment.isolated()``
returns a copy that never touches the real environment, for tests and sub-processes. Values are
taken literally: no shell expansion, ever.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from netra.errors import ConfigurationError, UserError

ChangeCallback = Callable[[str, str | None, str | None], None]
"""Called with ``(key, old, new)`` after a key changes; ``None`` means absent."""

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "key",
        "credential",
        "credentials",
        "private",
        "authorization",
        "cookie",
        "dsn",
    }
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ENV_NAMES = {
    "dev": "development",
    "develop": "development",
    "development": "development",
    "local": "development",
    "test": "test",
    "testing": "test",
    "ci": "test",
    "stage": "staging",
    "staging": "staging",
    "prod": "production",
    "production": "production",
    "live": "production",
}


_QUANTITY_WORDS = frozenset(
    {"ttl", "s", "ms", "budget", "count", "limit", "size", "bytes", "chars", "cost", "kib"}
)
"""A key ending in one of these names an amount about a secret, not the secret itself
(``access_token_ttl_s``, ``run_token_budget``, ``password_memory_kib``)."""


def is_secret_key(key: str) -> bool:
    """True when a key name looks like it holds a secret (``API_KEY``, ``DB_PASSWORD`` …)."""
    words = [word for word in _WORD_SPLIT.split(key.lower()) if word]
    if words and words[-1] in _QUANTITY_WORDS:
        return False
    return any(word in _SECRET_WORDS for word in words) or "apikey" in key.lower()


def mask(value: str) -> str:
    """Masked form of a secret: never more than a hint of its length."""
    if len(value) <= 4:
        return "****"
    return f"{value[:2]}****({len(value)} chars)"


def normalize_environment(name: str) -> str:
    """Map ``dev``/``local`` → development, ``test``/``testing`` → test, ``prod`` → production."""
    normalized = _ENV_NAMES.get(name.strip().lower())
    if normalized is None:
        known = ", ".join(sorted(set(_ENV_NAMES.values())))
        raise ConfigurationError(f"unknown environment {name!r}; expected one of {known}")
    return normalized


@dataclass(frozen=True, slots=True)
class EnvFileProblem:
    """One malformed line of an environment file."""

    path: str
    line: int
    text: str
    reason: str


class EnvFileError(UserError):
    """Raised when an environment file is missing or unreadable."""


def parse_env_file(path: Path) -> tuple[dict[str, str], list[EnvFileProblem]]:
    """Parse ``KEY=value`` lines; good lines load, malformed ones are reported by line number.

    Supports comments, blank lines, an optional ``export`` prefix and single or double
    quotes (double quotes understand ``\\n``, ``\\t``, ``\\"`` and ``\\\\``). ``$VAR`` is kept
    as written: there is no expansion.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EnvFileError(f"environment file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"cannot read environment file {path}: {exc}") from exc
    values: dict[str, str] = {}
    problems: list[EnvFileProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            problems.append(EnvFileProblem(str(path), number, raw, "expected KEY=value"))
            continue
        if not _KEY_RE.match(key):
            problems.append(EnvFileProblem(str(path), number, raw, f"invalid key {key!r}"))
            continue
        parsed = _parse_value(value.strip())
        if parsed is None:
            problems.append(EnvFileProblem(str(path), number, raw, "unterminated quote"))
            continue
        values[key] = parsed
    return values, problems


def _parse_value(value: str) -> str | None:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while (
            quote == '"' and end > 0 and value[end - 1] == "\\" and value[end - 2 : end] != "\\\\"
        ):
            end = value.find(quote, end + 1)
        if end < 0:
            return None
        inner = value[1:end]
        if quote == '"':
            inner = (
                inner.replace("\\\\", "\x00")
                .replace("\\n", "\n")
                .replace("\\t", "\t")
                .replace('\\"', '"')
                .replace("\x00", "\\")
            )
        return inner
    # Unquoted: an inline comment starts at " #".
    hash_at = value.find(" #")
    return (value[:hash_at] if hash_at >= 0 else value).strip()


class IsolatedEnvironment:
    """A thread-safe view of environment variables, either the real ones or an isolated copy."""

    def __init__(self, backing: MutableMapping[str, str], *, isolated: bool) -> None:
        self._backing = backing
        self._isolated = isolated
        self._lock = threading.RLock()
        self._sources: dict[str, str] = {}
        self._protected: set[str] = set()
        self._callbacks: list[ChangeCallback] = []
        self.problems: list[EnvFileProblem] = []
        """Malformed lines met by ``load_file`` so far."""

    @classmethod
    def process(cls) -> IsolatedEnvironment:
        """The process-wide view of the real environment (the same object every time, so
        protected keys and change callbacks hold for the whole process)."""
        with _PROCESS_LOCK:
            if not _PROCESS:
                _PROCESS.append(cls(os.environ, isolated=False))
            return _PROCESS[0]

    @classmethod
    def isolated(cls, initial: Mapping[str, str] | None = None) -> IsolatedEnvironment:
        """A private copy: changes never reach ``os.environ`` nor any other copy."""
        env = cls(dict(initial or {}), isolated=True)
        env._sources = dict.fromkeys(env._backing, "initial")
        return env

    @property
    def is_isolated(self) -> bool:
        return self._isolated

    # ---- reading -------------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            return self._backing.get(key, default)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._backing

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._backing)

    def as_dict(self) -> dict[str, str]:
        """An unmasked snapshot; for handing to libraries, never for printing."""
        with self._lock:
            return dict(self._backing)

    def source(self, key: str) -> str | None:
        """Where a key's value came from: ``process``, ``initial``, ``set``, or a file path."""
        with self._lock:
            if key not in self._backing:
                return None
            return self._sources.get(key, "process")

    def environment(self, key: str = "NETRA_ENVIRONMENT", default: str = "development") -> str:
        return normalize_environment(self.get(key) or default)

    def is_production(self) -> bool:
        return self.environment() == "production"

    def is_development(self) -> bool:
        return self.environment() == "development"

    def is_test(self) -> bool:
        return self.environment() == "test"

    # ---- writing -------------------------------------------------------------------------
    def set(self, key: str, value: str, *, source: str = "set", force: bool = False) -> None:
        if not _KEY_RE.match(key):
            raise UserError(f"invalid environment key {key!r}")
        with self._lock:
            if key in self._protected and not force:
                raise UserError(f"environment key {key!r} is protected; pass force=True")
            old = self._backing.get(key)
            self._backing[key] = value
            self._sources[key] = source
            callbacks = list(self._callbacks)
        if old != value:
            for callback in callbacks:
                callback(key, old, value)

    def delete(self, key: str, *, force: bool = False) -> None:
        with self._lock:
            if key in self._protected and not force:
                raise UserError(f"environment key {key!r} is protected; pass force=True")
            old = self._backing.pop(key, None)
            self._sources.pop(key, None)
            callbacks = list(self._callbacks)
        if old is not None:
            for callback in callbacks:
                callback(key, old, None)

    def protect(self, *keys: str) -> None:
        with self._lock:
            self._protected.update(keys)

    def unprotect(self, *keys: str) -> None:
        with self._lock:
            self._protected.difference_update(keys)

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Register a change callback; returns a function that unregisters it."""
        with self._lock:
            self._callbacks.append(callback)

        def unregister() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unregister

    def load_file(self, path: Path | str, *, override: bool = False) -> list[EnvFileProblem]:
        """Load an env file. Existing keys (the real environment, earlier files) win unless
        ``override``; later files loaded with ``override=True`` win over earlier ones.
        Returns the malformed lines (also kept in ``problems``); good lines always load."""
        values, problems = parse_env_file(Path(path))
        for key, value in values.items():
            with self._lock:
                present = key in self._backing
            if present and not override:
                continue
            self.set(key, value, source=str(path), force=override)
        with self._lock:
            self.problems.extend(problems)
        return problems

    # ---- output --------------------------------------------------------------------------
    def masked(self) -> dict[str, str]:
        """Every key with secret-looking values masked: safe to print or log."""
        with self._lock:
            return {
                key: mask(value) if is_secret_key(key) else value
                for key, value in sorted(self._backing.items())
            }

    def subprocess_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A minimal environment for a child process: PATH, HOME, locale and time zone from
        this environment, plus explicit additions. Nothing else leaks through."""
        base_keys = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")
        with self._lock:
            env = {k: self._backing[k] for k in base_keys if k in self._backing}
        env.setdefault("PATH", os.defpath)
        env.update(extra or {})
        return env

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        kind = "isolated" if self._isolated else "process"
        return f"IsolatedEnvironment({kind}, {self.masked()!r})"


_PROCESS: list[IsolatedEnvironment] = []
_PROCESS_LOCK = threading.Lock()


def get_env() -> IsolatedEnvironment:
    """The process-wide environment."""
    return IsolatedEnvironment.process()
