"""Production mode refuses default or weak secrets."""

from agentlightning.settings import DEFAULT_JWT_SECRET, Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_development_defaults_are_allowed_outside_production() -> None:
    settings = _settings()
    assert not settings.is_production
    assert settings.database_dialect == "sqlite"


def test_production_refuses_default_secret() -> None:
    problems = _settings(agl_env="production", jwt_secret=DEFAULT_JWT_SECRET).production_problems()
    assert any("JWT_SECRET" in p and "default" in p for p in problems)


def test_production_refuses_short_secret() -> None:
    problems = _settings(agl_env="production", jwt_secret="short-secret").production_problems()
    assert any("shorter than 32" in p for p in problems)


def test_production_refuses_weak_admin_password() -> None:
    for weak in ("admin", "changeme", "short"):
        problems = _settings(agl_env="production", jwt_secret="k" * 40, agl_admin_password=weak).production_problems()
        assert any("AGL_ADMIN_PASSWORD" in p for p in problems)


def test_production_accepts_strong_configuration() -> None:
    settings = _settings(agl_env="production", jwt_secret="k" * 40, agl_admin_password="a-long-admin-passphrase")
    assert settings.production_problems() == []


def test_environment_variable_names(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("REDIS_URL", "redis://h:6379/0")
    monkeypatch.setenv("JWT_SECRET", "z" * 40)
    monkeypatch.setenv("AGL_ENV", "production")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_dialect == "postgresql" and settings.redis_url == "redis://h:6379/0"
    assert settings.is_production and settings.production_problems() == []
