from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from netra.env import (
    EnvFileError,
    IsolatedEnvironment,
    get_env,
    is_secret_key,
    normalize_environment,
)
from netra.errors import ConfigurationError, UserError


def test_isolated_copies_never_touch_the_process_or_each_other() -> None:
    key = "NETRA_TEST_ISOLATION_KEY"
    assert key not in os.environ
    first, second = IsolatedEnvironment.isolated(), IsolatedEnvironment.isolated()
    first.set(key, "one")
    assert first.get(key) == "one"
    assert second.get(key) is None
    assert key not in os.environ


def test_the_process_instance_reads_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRA_TEST_READ_THROUGH", "yes")
    assert IsolatedEnvironment.process().get("NETRA_TEST_READ_THROUGH") == "yes"


def test_env_files_load_with_precedence_sources_and_line_numbers(tmp_path: Path) -> None:
    base = tmp_path / "base.env"
    base.write_text(
        "# comment\nA=1\nB='two words'\nexport C=\"line\\nbreak\"\nthis is wrong\nD=$HOME\n"
        "UNICODE=héllo ✓\n1BAD=x\n",
        encoding="utf-8",
    )
    override = tmp_path / "override.env"
    override.write_text("A=override\n", encoding="utf-8")
    env = IsolatedEnvironment.isolated({"B": "from-real-env"})
    problems = env.load_file(base)
    assert [p.line for p in problems] == [5, 8]
    assert env.get("A") == "1" and env.source("A") == str(base)
    assert env.get("B") == "from-real-env" and env.source("B") == "initial"
    assert env.get("C") == "line\nbreak"
    assert env.get("D") == "$HOME"  # never expanded
    assert env.get("UNICODE") == "héllo ✓"
    env.load_file(override, override=True)
    assert env.get("A") == "override" and env.source("A") == str(override)
    with pytest.raises(EnvFileError):
        env.load_file(tmp_path / "missing.env")


def test_protected_keys_and_change_callbacks() -> None:
    env = IsolatedEnvironment.isolated({"LOCKED": "a"})
    changes: list[tuple[str, str | None, str | None]] = []
    env.on_change(lambda key, old, new: changes.append((key, old, new)))
    env.protect("LOCKED")
    with pytest.raises(UserError):
        env.set("LOCKED", "b")
    env.set("LOCKED", "b", force=True)
    env.set("OTHER", "x")
    env.delete("OTHER")
    assert changes == [("LOCKED", "a", "b"), ("OTHER", None, "x"), ("OTHER", "x", None)]


def test_secrets_are_masked_in_dumps_and_repr() -> None:
    env = IsolatedEnvironment.isolated(
        {"OPENAI_API_KEY": "sk-supersecretvalue", "DB_PASSWORD": "hunter22", "PLAIN": "visible"}
    )
    dump, text = env.masked(), repr(env)
    assert "supersecretvalue" not in text and "hunter22" not in text
    assert dump["PLAIN"] == "visible" and dump["DB_PASSWORD"] != "hunter22"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("auth.jwt_secret", True),
        ("refresh_token", True),
        ("db_password", True),
        ("auth.access_token_ttl_s", False),
        ("limits.run_token_budget", False),
        ("token_count", False),
        ("auth.password_memory_kib", False),
        ("title", False),
    ],
)
def test_a_key_naming_an_amount_about_a_secret_is_not_a_secret(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dev", "development"),
        ("local", "development"),
        ("TESTING", "test"),
        ("stage", "staging"),
        ("prod", "production"),
    ],
)
def test_environment_names_are_normalised(name: str, expected: str) -> None:
    assert normalize_environment(name) == expected
    with pytest.raises(ConfigurationError):
        normalize_environment("moon")


def test_subprocess_environment_is_minimal() -> None:
    env = IsolatedEnvironment.isolated({"PATH": "/bin", "HOME": "/root", "SECRET_TOKEN": "x"})
    child = env.subprocess_env({"EXTRA": "1"})
    assert child == {"PATH": "/bin", "HOME": "/root", "EXTRA": "1"}


def test_ten_threads_of_mixed_operations_lose_no_update() -> None:
    env = IsolatedEnvironment.isolated()

    def work(thread: int) -> None:
        for i in range(1000):
            env.set(f"T{thread}_{i % 50}", str(i))
            env.get(f"T{thread}_{(i * 7) % 50}")
            if i % 10 == 0:
                env.masked()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(env.keys()) == 500
    assert all(env.get(f"T{n}_{k}") == str(950 + k) for n in range(10) for k in range(50))


def test_the_process_instance_is_one_object_with_shared_protection() -> None:
    assert get_env() is IsolatedEnvironment.process()
    assert not get_env().is_isolated


def test_nothing_else_in_src_reads_the_environment() -> None:
    """Nothing of the server: ``netra.client`` is a library of its own that imports nothing
    of Netra (tests/test_layers.py), and reads its two variables (NETRA_URL, and its config
    directory) itself."""
    src = Path(__file__).resolve().parents[2] / "src" / "netra"
    offenders = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if path.name != "env.py"
        and path.relative_to(src).parts[0] != "client"
        and any(word in path.read_text() for word in ("os.environ", "os.getenv", "getenv("))
    ]
    assert offenders == []
