"""Configuration from the environment, and docker-compose.yml against it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from portal import create_app
from portal.config import DEFAULT_SECRET_KEY, Config

ROOT = Path(__file__).resolve().parent.parent


def _config(monkeypatch, **env) -> Config:
    for key in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENVIRONMENT", "DEBUG"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Config()


def test_defaults_are_the_original_designs(monkeypatch):
    config = _config(monkeypatch)
    assert config.MAX_MODULE_SIZE_MB == 50
    assert config.SQLALCHEMY_DATABASE_URI.startswith("sqlite:///")
    assert config.SQLALCHEMY_DATABASE_URI.endswith("instance/registry.db")
    assert config.REDIS_URL is None and config.SERVICE_REGISTRY_URL is None


def test_postgres_urls_use_psycopg_3(monkeypatch):
    config = _config(monkeypatch, DATABASE_URL="postgresql://u:p@db:5432/x")
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u:p@db:5432/x"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db:5432/x",
        "postgresql+asyncpg://u:p@db:5432/x",
        "postgresql+psycopg2://u:p@db:5432/x",
        "postgresql+psycopg://u:p@db:5432/x",
    ],
)
def test_every_postgres_url_form_is_driven_by_psycopg_3(monkeypatch, url):
    config = _config(monkeypatch, DATABASE_URL=url)
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u:p@db:5432/x"


def test_the_original_designs_asyncpg_url_starts_the_app(monkeypatch, tmp_path):
    """The URL is only parsed at start (no connection is made), so the app must build."""
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@127.0.0.1:1/x")
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    app = create_app()
    with app.app_context():
        from portal.extensions import db

        assert db.engine.dialect.driver == "psycopg"


@pytest.mark.parametrize(
    ("environment", "setting", "served"),
    [
        ("development", None, True),
        ("production", None, False),
        ("production", "1", True),
        ("development", "0", False),
    ],
)
def test_the_browsable_api_docs_follow_api_docs(
    monkeypatch, tmp_path, environment, setting, served
):
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/r.db")
    if setting is not None:
        monkeypatch.setenv("API_DOCS", setting)
    else:
        monkeypatch.delenv("API_DOCS", raising=False)
    client = create_app().test_client()
    for path in ("/docs", "/redoc"):
        assert client.get(path).status_code == (200 if served else 404)
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_production_refuses_the_default_secret_key(monkeypatch):
    config = _config(monkeypatch, ENVIRONMENT="production")
    assert config.SECRET_KEY == DEFAULT_SECRET_KEY
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(config)


@pytest.mark.parametrize("key", ["short", "x" * 31, "é" * 15])
def test_production_refuses_a_secret_key_under_32_bytes(monkeypatch, key):
    config = _config(monkeypatch, ENVIRONMENT="production", SECRET_KEY=key)
    with pytest.raises(RuntimeError, match="at least 32 bytes"):
        create_app(config)


def test_production_accepts_a_32_byte_secret_key(monkeypatch):
    create_app(_config(monkeypatch, ENVIRONMENT="production", SECRET_KEY="k" * 32))


def test_production_turns_debug_off_and_cookies_secure(monkeypatch):
    config = _config(monkeypatch, ENVIRONMENT="production", DEBUG="true", SECRET_KEY="s" * 40)
    assert config.DEBUG is False
    assert config.SESSION_COOKIE_SECURE is True
    app = create_app(config)
    assert app.debug is False


def test_development_allows_debug(monkeypatch):
    assert _config(monkeypatch, DEBUG="1").DEBUG is True


def test_docker_compose_matches_the_apps_configuration():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "web", "worker"}
    assert "5434:5432" in services["postgres"]["ports"]
    assert "6381:6379" in services["redis"]["ports"]
    assert "8005:8005" in services["web"]["ports"]
    assert "gunicorn" in services["web"]["command"] and "8005" in services["web"]["command"]
    assert "worker" in services["worker"]["command"]
    known = set(vars(Config()))
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert set(env) <= known | {"DATABASE_URL"}, set(env) - known
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["ENVIRONMENT"] == "production"
        assert "SECRET_KEY" in env


def test_the_readme_starts_with_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    assert "make run" in head and "make test" in head
