"""Configuration from the environment (the original design's variable names and defaults)."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

DEFAULT_SECRET_KEY = "dev-secret-key-change-me-never-use-in-production"
BASE_DIR = Path(__file__).resolve().parent.parent


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


class Config:
    """Read once per app from the environment; tests subclass it."""

    def __init__(self) -> None:
        env = os.environ
        self.ENVIRONMENT = env.get("ENVIRONMENT", "development")
        production = self.ENVIRONMENT == "production"
        self.DEBUG = False if production else _bool(env.get("DEBUG"))
        self.SECRET_KEY = env.get("SECRET_KEY", DEFAULT_SECRET_KEY)
        self.INSTANCE_PATH = env.get("INSTANCE_PATH", str(BASE_DIR / "instance"))
        self.SQLALCHEMY_DATABASE_URI = normalize_database_url(
            env.get("DATABASE_URL") or f"sqlite:///{Path(self.INSTANCE_PATH) / 'registry.db'}"
        )
        self.REDIS_URL = env.get("REDIS_URL") or None
        # The browsable API docs (/docs, /redoc): for development, as the original design
        # says; production turns them off unless asked. The OpenAPI document stays served.
        self.API_DOCS = _bool(env.get("API_DOCS"), default=not production)
        self.EVENT_STREAM = env.get("EVENT_STREAM", "module-registry:events")
        self.EVENT_STREAM_MAXLEN = _int("EVENT_STREAM_MAXLEN", 100_000)
        self.SERVICE_REGISTRY_URL = env.get("SERVICE_REGISTRY_URL") or None
        self.SERVICE_PUBLIC_URL = env.get("SERVICE_PUBLIC_URL", "http://127.0.0.1:8005")
        self.AUTH_SERVICE_URL = env.get("AUTH_SERVICE_URL") or None
        # The platform auth service's tokens (RS256/ES256), verified against its key set.
        self.AUTH_JWKS_URL = env.get("AUTH_JWKS_URL") or (
            self.AUTH_SERVICE_URL.rstrip("/") + "/.well-known/jwks.json"
            if self.AUTH_SERVICE_URL
            else None
        )
        self.AUTH_ISSUER = env.get("AUTH_ISSUER") or None
        self.AUTH_AUDIENCE = env.get("AUTH_AUDIENCE", "module-registry")
        self.AUTH_ALGORITHMS = [
            a.strip() for a in env.get("AUTH_ALGORITHMS", "RS256,ES256").split(",") if a.strip()
        ]
        self.AUTH_JWKS_CACHE_SECONDS = _int("AUTH_JWKS_CACHE_SECONDS", 300)
        self.AUTH_JWKS_REFRESH_COOLDOWN = _int("AUTH_JWKS_REFRESH_COOLDOWN", 10)
        self.SERVICE_REGISTRY_REGISTER_PATH = env.get(
            "SERVICE_REGISTRY_REGISTER_PATH", "/api/v1/services/register"
        )
        self.SERVICE_REGISTRY_DEREGISTER_PATH = env.get(
            "SERVICE_REGISTRY_DEREGISTER_PATH", "/api/v1/services/{name}"
        )
        self.SERVICE_REGISTRY_RENEW_SECONDS = _int("SERVICE_REGISTRY_RENEW_SECONDS", 30)
        self.MAX_MODULE_SIZE_MB = _int("MAX_MODULE_SIZE_MB", 50)
        # /health: every probe within this many seconds; the relay counts as lagging when
        # its oldest unpublished event is older than RELAY_LAG_DEGRADED_SECONDS.
        self.HEALTH_PROBE_TIMEOUT = float(env.get("HEALTH_PROBE_TIMEOUT", "0.8"))
        self.RELAY_LAG_DEGRADED_SECONDS = _int("RELAY_LAG_DEGRADED_SECONDS", 60)
        # How many proxies in front set X-Forwarded-For/-Proto (the buffering front: 1).
        # The client address they report is what the sign-in throttle counts by.
        self.TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)
        self.ORPHAN_SWEEP_INTERVAL_SECONDS = _int("ORPHAN_SWEEP_INTERVAL_SECONDS", 600)
        self.MODULE_STORAGE_PATH = env.get(
            "MODULE_STORAGE_PATH", str(Path(self.INSTANCE_PATH) / "packages")
        )
        # Active health checks (product.md, "Health"). Endpoint URLs must resolve inside these CIDRs
        # (link-local and cloud metadata addresses are refused whatever they say); by
        # default loopback and the private ranges, in production the private ranges only.
        self.HEALTH_CHECK_ALLOWED_NETWORKS = env.get("HEALTH_CHECK_ALLOWED_NETWORKS") or ",".join(
            ([] if production else ["127.0.0.0/8", "::1/128"])
            + ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
        )
        self.HEALTH_CHECK_DEFAULT_INTERVAL = _int("HEALTH_CHECK_DEFAULT_INTERVAL", 60)
        self.HEALTH_CHECK_DEFAULT_TIMEOUT = _int("HEALTH_CHECK_DEFAULT_TIMEOUT", 3)
        # Checks in flight at once: enough that a tenth of 1,000 endpoints hanging for the
        # whole timeout still fit in one wave.
        self.HEALTH_CHECK_CONCURRENCY = _int("HEALTH_CHECK_CONCURRENCY", 128)
        # Search results and filter menus kept per process and catalog generation (0: off).
        self.CATALOG_CACHE_ENTRIES = _int("CATALOG_CACHE_ENTRIES", 1024)
        self.JWT_AUDIENCE = env.get("JWT_AUDIENCE", "module-registry")
        self.JWT_TTL_SECONDS = _int("JWT_TTL_SECONDS", 3600)
        self.SQLALCHEMY_ENGINE_OPTIONS: dict = {}
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = production
        self.REMEMBER_COOKIE_SECURE = production
        self.WTF_CSRF_TIME_LIMIT = None  # tied to the session instead, so long-open pages work
        self.TESTING = False
        self.PASSWORD_HASH_METHOD = "scrypt"
        # Leave headroom for the multipart framing around the package itself.
        self.MAX_CONTENT_LENGTH = (self.MAX_MODULE_SIZE_MB + 1) * 1024 * 1024

    def check(self) -> None:
        """Fail fast on settings that must never reach production."""
        if self.ENVIRONMENT == "production" and self.SECRET_KEY == DEFAULT_SECRET_KEY:
            raise RuntimeError("SECRET_KEY must be set when ENVIRONMENT=production.")
        if self.ENVIRONMENT == "production" and len(self.SECRET_KEY.encode()) < 32:
            # It signs sessions and JWTs: a short key can be guessed offline from one token.
            raise RuntimeError("SECRET_KEY must be at least 32 bytes when ENVIRONMENT=production.")
        for cidr in filter(str.strip, self.HEALTH_CHECK_ALLOWED_NETWORKS.split(",")):
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as exc:
                raise RuntimeError(
                    f"HEALTH_CHECK_ALLOWED_NETWORKS: {cidr.strip()!r} is not a CIDR."
                ) from exc


class TestConfig(Config):
    """A throwaway database and no CSRF (one test module turns it back on)."""

    __test__ = False  # not a pytest test class

    def __init__(self, database_url: str, **overrides) -> None:
        super().__init__()
        self.TESTING = True
        self.ENVIRONMENT = "test"
        self.SQLALCHEMY_DATABASE_URI = normalize_database_url(database_url)
        self.WTF_CSRF_ENABLED = False
        # Statement counts in tests stay those of a cold cache; the cache's tests turn it on.
        self.CATALOG_CACHE_ENTRIES = 0
        self.REDIS_URL = None
        # Hashing cost is not under test; a fast method keeps hundreds of sign-ins quick.
        self.PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
        for key, value in overrides.items():
            setattr(self, key, value)


def normalize_database_url(url: str) -> str:
    """Drive PostgreSQL with psycopg 3 whatever scheme the URL was written with: `postgres://`
    (Heroku style), `postgresql://`, or another driver's (the original design's
    `postgresql+asyncpg://`, `postgresql+psycopg2://`). A replaced driver is logged once."""
    scheme, sep, rest = url.partition("://")
    base, _, driver = scheme.partition("+")
    if not sep or base not in ("postgres", "postgresql") or driver == "psycopg":
        return url
    if driver:
        logging.getLogger(__name__).info(
            "DATABASE_URL names the %s driver; the registry drives PostgreSQL with psycopg 3",
            driver,
        )
    return "postgresql+psycopg://" + rest
