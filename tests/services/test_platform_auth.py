"""Tokens from the platform's auth service, verified against its key set (a real HTTP
server in the test serves the JWKS, rotates its key and goes down)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.models import User
from tests.fake_servers import FakeServer, free_port
from tests.helpers import bearer, count, make_people

ISSUER = "https://auth.xerpium.test"
AUDIENCE = "module-registry"


def _rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(private_key, kid: str) -> dict:
    algorithm = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(private_key, rsa.RSAPrivateKey)
        else (jwt.algorithms.ECAlgorithm)
    )
    data = json.loads(algorithm.to_jwk(private_key.public_key()))
    data.update(kid=kid, use="sig")
    return data


@pytest.fixture
def auth_service():
    server = FakeServer()
    yield server
    server.stop()


@pytest.fixture
def platform_app(app, database_url, auth_service):
    """The app configured to trust the fake auth service, on the session's database."""
    platform = create_app(
        TestConfig(
            database_url,
            AUTH_JWKS_URL=auth_service.url + "/.well-known/jwks.json",
            AUTH_ISSUER=ISSUER,
            AUTH_AUDIENCE=AUDIENCE,
            AUTH_JWKS_CACHE_SECONDS=300,
            AUTH_JWKS_REFRESH_COOLDOWN=0,
            MODULE_STORAGE_PATH=app.config["MODULE_STORAGE_PATH"],
            INSTANCE_PATH=app.config["INSTANCE_PATH"],
        )
    )
    with platform.app_context():
        make_people()
        db.session.remove()
    yield platform
    with platform.app_context():
        db.session.remove()
        db.engine.dispose()


def _serve_keys(server, *pairs):
    server.routes[("GET", "/.well-known/jwks.json")] = (
        200,
        {"keys": [_jwk(key, kid) for key, kid in pairs]},
    )


def _token(key, kid, alg="RS256", **overrides):
    now = datetime.now(UTC)
    claims = {
        "sub": "auth|42",
        "email": "Newcomer@Acme.test",
        "company": "acme",
        "role": "company_admin",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now - timedelta(seconds=5),
        "exp": now + timedelta(minutes=5),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _events(app, token):
    return app.test_client().get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})


def test_a_user_seen_first_is_created_and_later_tokens_update_role_and_company(
    platform_app, auth_service
):
    key = _rsa()
    _serve_keys(auth_service, (key, "k1"))
    assert _events(platform_app, _token(key, "k1")).status_code == 200
    with platform_app.app_context():
        user = db.session.execute(db.select(User).filter_by(email="newcomer@acme.test")).scalar()
        assert user.role == "company_admin" and user.company.slug == "acme"
        assert user.password_hash is None
    later = _token(key, "k1", role="developer", company="globex")
    assert _events(platform_app, later).status_code == 200
    with platform_app.app_context():
        user = db.session.execute(db.select(User).filter_by(email="newcomer@acme.test")).scalar()
        assert user.role == "developer" and user.company.slug == "globex"


def test_es256_tokens_are_accepted_too(platform_app, auth_service):
    key = ec.generate_private_key(ec.SECP256R1())
    _serve_keys(auth_service, (key, "ec1"))
    assert _events(platform_app, _token(key, "ec1", alg="ES256")).status_code == 200


def test_key_rotation_by_kid_is_followed(platform_app, auth_service):
    old, new = _rsa(), _rsa()
    _serve_keys(auth_service, (old, "k1"))
    assert _events(platform_app, _token(old, "k1")).status_code == 200
    _serve_keys(auth_service, (new, "k2"))  # the service rotates its key
    assert _events(platform_app, _token(new, "k2")).status_code == 200


def test_a_token_naming_an_unknown_company_is_401_and_creates_nobody(platform_app, auth_service):
    key = _rsa()
    _serve_keys(auth_service, (key, "k1"))
    with platform_app.app_context():
        before = count(User)
    resp = _events(platform_app, _token(key, "k1", company="initech"))
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    with platform_app.app_context():
        assert count(User) == before


@pytest.mark.parametrize(
    "case", ["unknown_kid", "alg_none", "hs256_with_public_key", "expired", "audience", "issuer"]
)
def test_bad_platform_tokens_are_401(platform_app, auth_service, case):
    key = _rsa()
    _serve_keys(auth_service, (key, "k1"))
    past = datetime.now(UTC) - timedelta(hours=1)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tokens = {
        "unknown_kid": lambda: _token(_rsa(), "nope"),
        "alg_none": lambda: jwt.encode(
            {"sub": "x", "email": "a@acme.test", "role": "developer", "company": "acme"},
            None,
            algorithm="none",
            headers={"kid": "k1"},
        ),
        "hs256_with_public_key": lambda: _hmac_with(public_pem),
        "expired": lambda: _token(key, "k1", iat=past, nbf=past, exp=past + timedelta(minutes=5)),
        "audience": lambda: _token(key, "k1", aud="billing"),
        "issuer": lambda: _token(key, "k1", iss="https://evil.test"),
    }
    resp = _events(platform_app, tokens[case]())
    assert resp.status_code == 401


def _hmac_with(secret: bytes) -> str:
    """An HS256 token 'signed' with the auth service's public key (key confusion)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(datetime.now(UTC).timestamp())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(
        json.dumps(
            {
                "sub": "x",
                "email": "evil@acme.test",
                "role": "platform_admin",
                "iss": ISSUER,
                "aud": AUDIENCE,
                "exp": now + 300,
            }
        ).encode()
    )
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_an_unreachable_key_set_refuses_its_tokens_with_a_log_line_and_ours_still_work(
    app, database_url, caplog
):
    platform = create_app(
        TestConfig(
            database_url,
            AUTH_JWKS_URL=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
            AUTH_ISSUER=ISSUER,
            MODULE_STORAGE_PATH=app.config["MODULE_STORAGE_PATH"],
            INSTANCE_PATH=app.config["INSTANCE_PATH"],
        )
    )
    with platform.app_context():
        make_people()
        db.session.remove()
    with caplog.at_level(logging.WARNING):
        resp = _events(platform, _token(_rsa(), "k1"))
    assert resp.status_code == 401
    assert any("key set unreachable" in r.getMessage() for r in caplog.records)
    ours = platform.test_client().get("/api/v1/events", headers=bearer(platform, "dev@acme.test"))
    assert ours.status_code == 200
    with platform.app_context():
        db.session.remove()
        db.engine.dispose()
