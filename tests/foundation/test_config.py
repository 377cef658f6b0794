from __future__ import annotations

from pathlib import Path

import pytest

from netra.config import UnifiedConfigurationManager
from netra.env import IsolatedEnvironment
from netra.errors import ConfigurationError


def test_layers_apply_in_order_and_report_their_source(tmp_path: Path) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text("[limits]\nmax_steps = 5\nrun_timeout_s = 60\n[server]\nport = 9000\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text("NETRA_LIMITS__RUN_TIMEOUT_S=30\nNETRA_SERVER__PORT=9100\n")
    env = IsolatedEnvironment.isolated({"NETRA_SERVER__PORT": "9200"})
    config = UnifiedConfigurationManager(
        env, config_file=toml, env_file=dotenv, overrides={"logging.level": "DEBUG"}
    )
    settings = config.settings
    assert settings.limits.max_steps == 5 and config.source("limits.max_steps").startswith("file")
    assert settings.limits.run_timeout_s == 30 and config.source("limits.run_timeout_s").startswith(
        "dotenv"
    )
    assert settings.server.port == 9200 and config.source("server.port") == "environment"
    assert settings.logging.level == "DEBUG" and config.source("logging.level") == "override"
    assert config.source("tools.timeout_s") == "default"


def test_an_invalid_set_changes_nothing_and_names_key_value_and_rule() -> None:
    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated())
    seen: list[list[str]] = []
    config.on_change(lambda _old, _new, paths: seen.append(paths))
    with pytest.raises(ConfigurationError) as error:
        config.set("limits.max_steps", 0)
    assert "limits.max_steps" in error.value.message and "0" in error.value.message
    assert config.settings.limits.max_steps == 16
    config.set("limits.max_steps", 3)
    assert config.settings.limits.max_steps == 3
    assert seen == [["limits.max_steps"]]
    assert config.history[-1].paths == ("limits.max_steps",)
    with pytest.raises(ConfigurationError, match="unknown setting"):
        config.set("limits.nonsense", 1)


def test_production_refuses_unsafe_values_listing_every_problem() -> None:
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_ENVIRONMENT": "production",
            "NETRA_AUTH__JWT_SECRET": "short",
            "NETRA_LOGGING__LEVEL": "DEBUG",
            "NETRA_DATABASE__ECHO": "true",
        }
    )
    config = UnifiedConfigurationManager(env)
    problems = config.problems()
    assert len(problems) == 3
    with pytest.raises(ConfigurationError) as error:
        config.check()
    assert "short" not in error.value.message  # the secret itself is never shown


def test_the_masked_description_never_shows_a_secret() -> None:
    secret = "a-very-long-signing-secret-of-more-than-32-bytes"
    env = IsolatedEnvironment.isolated({"NETRA_AUTH__JWT_SECRET": secret})
    rows = UnifiedConfigurationManager(env).describe()
    text = repr(rows)
    assert secret not in text
    assert ("auth.issuer", "netra", "default") in rows


def test_reload_applies_reloadable_keys_and_reports_the_rest(tmp_path: Path) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text("[limits]\nmax_steps = 5\n[server]\nport = 9000\n")
    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated(), config_file=toml)
    changes: list[list[str]] = []
    config.on_change(lambda _old, _new, paths: changes.append(paths))
    toml.write_text("[limits]\nmax_steps = 7\n[server]\nport = 9100\n[logging]\nlevel = 'DEBUG'\n")
    report = config.reload()
    assert report.applied == ("limits.max_steps", "logging.level")
    assert report.restart_required == ("server.port",)
    assert config.settings.limits.max_steps == 7 and config.settings.server.port == 9000
    assert changes == [["limits.max_steps", "logging.level"]]
    toml.write_text("[limits]\nmax_steps = -1\n")
    with pytest.raises(ConfigurationError):
        config.reload()
    assert config.settings.limits.max_steps == 7


def test_limits_resolve_user_over_tier_over_global(tmp_path: Path) -> None:
    toml = tmp_path / "netra.toml"
    toml.write_text(
        "[limits]\nmax_steps = 10\n[tiers.free]\nmax_steps = 4\n[tiers.team]\nmax_steps = 20\n"
    )
    config = UnifiedConfigurationManager(IsolatedEnvironment.isolated(), config_file=toml)
    assert config.limits_for("free").max_steps == 4
    assert config.limits_for("team").max_steps == 20
    assert config.limits_for("pro").max_steps == 10
    assert config.limits_for("free", {"max_steps": 2}).max_steps == 2
    assert config.limits_for("team", {"max_steps": 2}).max_steps == 2
    # An override of a limit the server no longer knows is ignored, not an error.
    assert config.limits_for("free", {"colour": 1}).max_steps == 4
    # The tier's own value moves under a user's override when the file changes.
    toml.write_text("[tiers.free]\nmax_steps = 6\nruns_per_minute = 3\n")
    config.reload()
    mine = config.limits_for("free", {"max_steps": 2})
    assert (mine.max_steps, mine.runs_per_minute) == (2, 3)


def test_environment_aliases_and_url_passwords(tmp_path: Path) -> None:
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_ENVIRONMENT": "prod",
            "NETRA_DATABASE__URL": "postgresql+asyncpg://netra:s3cr3t-pw@db.internal:5432/netra",
        }
    )
    config = UnifiedConfigurationManager(env)
    assert config.settings.environment == "production"
    shown = {path: value for path, value, _ in config.describe()}
    assert shown["database.url"] == "postgresql+asyncpg://netra:***@db.internal:5432/netra"


def test_the_clients_variables_are_not_settings_of_the_server() -> None:
    env = IsolatedEnvironment.isolated(
        {
            "NETRA_URL": "http://127.0.0.1:9000",
            "NETRA_API_KEY": "nk_x",
            "NETRA_SERVER__PORT": "9200",
        }
    )
    config = UnifiedConfigurationManager(env)
    assert config.settings.server.port == 9200
