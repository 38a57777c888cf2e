"""Tokens of the platform's auth service: verified against its published key set (JWKS),
cached with rotation by `kid`; the user is created or updated from the claims."""

from __future__ import annotations

import logging

import jwt
import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.models import Company, Role, User
from portal.services.errors import Unauthorized
from portal.services.uow import unit_of_work

log = logging.getLogger(__name__)
_CLIENT_KEY = "portal.jwks_client"


def jwks_client() -> jwt.PyJWKClient:
    """One cached key-set client per app: keys are kept for AUTH_JWKS_CACHE_SECONDS, and
    an unknown `kid` refetches the set once (key rotation)."""
    app = current_app
    client = app.extensions.get(_CLIENT_KEY)
    if client is None:
        client = jwt.PyJWKClient(
            app.config["AUTH_JWKS_URL"],
            cache_keys=True,
            lifespan=app.config["AUTH_JWKS_CACHE_SECONDS"],
            # An unknown kid refetches at most this often: a flood of forged kids
            # cannot turn into a flood of requests to the auth service.
            cooldown_duration=app.config["AUTH_JWKS_REFRESH_COOLDOWN"],
            timeout=3,
        )
        app.extensions[_CLIENT_KEY] = client
    return client


def user_from_platform_token(token: str, header: dict) -> User:
    """The user an auth-service token names. Raises Unauthorized."""
    config = current_app.config
    try:
        signing_key = jwks_client().get_signing_key_from_jwt(token)
    except jwt.PyJWKClientConnectionError as exc:
        log.warning("auth service key set unreachable (%s): refusing its token", exc)
        raise Unauthorized("The auth service's keys cannot be fetched right now.") from exc
    except jwt.PyJWTError as exc:
        log.info("auth service token refused: %s", exc)
        raise Unauthorized(f"The token's key is not known: {exc}.") from exc
    try:
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=[header["alg"]],
            audience=config["AUTH_AUDIENCE"],
            issuer=config["AUTH_ISSUER"],
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The token is not valid: {exc}.") from exc
    return _provision(claims)


def _provision(claims: dict) -> User:
    """Create the user on first sight; later tokens update role and company."""
    email = str(claims.get("email") or "").strip().lower()
    role = claims.get("role")
    if not email or not Role.has(role):
        raise Unauthorized("The token lacks a valid email or role.")
    company = None
    if role != Role.PLATFORM_ADMIN:
        slug = claims.get("company")
        company = db.session.execute(sa.select(Company).where(Company.slug == slug)).scalar()
        if company is None:
            raise Unauthorized("The token names a company this registry does not know.")
    company_id = company.id if company else None
    user = db.session.execute(sa.select(User).where(User.email == email)).scalar()
    if user is not None and user.role == role and user.company_id == company_id:
        if not user.active:
            raise Unauthorized("This account is deactivated.")
        return user
    with unit_of_work("The account changed meanwhile; try again."):
        if user is None:
            user = User(email=email, password_hash=None, role=role, company_id=company_id)
            db.session.add(user)
        else:
            user.role, user.company_id = role, company_id
    if not user.active:
        raise Unauthorized("This account is deactivated.")
    return user
