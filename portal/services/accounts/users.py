"""Companies, users, sign-in, sessions and API tokens (personal tokens and JWTs)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

import jwt
import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import db
from portal.models import ApiToken, Company, Role, User
from portal.models.base import utcnow
from portal.services.accounts import throttle
from portal.services.accounts.access import company_by_slug
from portal.services.errors import (
    Conflict,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from portal.services.uow import unit_of_work

# A token's "last used" is this precise: a pipeline calling in a loop must not turn each
# of its reads into a write.
TOKEN_USE_PRECISION = timedelta(minutes=1)
API_TOKEN_PREFIX = "mrt_"
SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BAD_CREDENTIALS = "Invalid email or password."
_DUMMY_HASHES: dict[str, str] = {}


def _hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _dummy_hash() -> str:
    """A hash made with the configured method, checked when the email is unknown so that
    both answers cost the same work (an unknown email must not answer faster)."""
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_hex(16), method=method)
    return _DUMMY_HASHES[method]


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def create_company(slug: str, name: str) -> Company:
    """Add a company. Raises ValidationFailed, Conflict."""
    slug = (slug or "").strip()
    errors = []
    if not SLUG_RE.match(slug) or len(slug) > 64:
        errors.append({"pointer": "/slug", "message": "use lowercase letters, digits, hyphens"})
    if not (name or "").strip():
        errors.append({"pointer": "/name", "message": "is required"})
    if errors:
        raise ValidationFailed("The company is invalid.", errors=errors)
    with unit_of_work(f"A company with the slug {slug!r} exists already."):
        company = Company(slug=slug, name=name.strip())
        db.session.add(company)
    return company


def create_user(email: str, password: str, role: str, company_slug: str | None = None) -> User:
    """Add a user. Raises ValidationFailed, NotFound (company), Conflict (email taken)."""
    email = normalize_email(email)
    errors = []
    if not EMAIL_RE.match(email):
        errors.append({"pointer": "/email", "message": "must be an email address"})
    if len(password or "") < 8:
        errors.append({"pointer": "/password", "message": "must be at least 8 characters"})
    if not Role.has(role):
        errors.append({"pointer": "/role", "message": f"must be one of {', '.join(Role)}"})
    if role != Role.PLATFORM_ADMIN and not company_slug:
        errors.append({"pointer": "/company", "message": "is required for this role"})
    if errors:
        raise ValidationFailed("The user is invalid.", errors=errors)
    company = company_by_slug(company_slug) if company_slug else None
    with unit_of_work(f"A user with the email {email} exists already."):
        user = User(
            email=email,
            password_hash=_hash_password(password),
            role=role,
            company_id=company.id if company else None,
        )
        db.session.add(user)
    return user


def authenticate(email: str, password: str, *, address: str | None = None) -> User:
    """The user with these credentials, signing in from `address` (the client's IP).
    Raises Unauthorized, TooManyRequests.

    Every attempt is counted by the throttle before the password is checked (growing
    delays per account, per address and per pair; services/accounts/throttle.py), and an
    unknown e-mail costs the same hash work as a known one.
    """
    email = normalize_email(email)
    throttle.reserve_attempt(email, address)
    user = db.session.execute(sa.select(User).where(User.email == email)).scalar()
    stored = user.password_hash if user and user.password_hash else _dummy_hash()
    valid = check_password_hash(stored, password or "")
    if user is None or not user.password_hash or not valid or not user.active:
        raise Unauthorized(BAD_CREDENTIALS)
    throttle.release_attempt(email, address)
    return user


def user_for_session(session_id: str) -> User | None:
    """The user a session cookie names, if that session has not been signed out."""
    user_id, _, version = (session_id or "").partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version) or not user.active:
        return None
    return user


def end_sessions(user: User) -> None:
    """Sign out everywhere: cookies and JWTs issued before now stop being valid."""
    with unit_of_work():
        db.session.execute(
            sa.update(User)
            .where(User.id == user.id)
            .values(session_version=User.session_version + 1)
            .execution_options(synchronize_session=False)
        )


def issue_jwt(user: User) -> dict:
    """A short-lived HS256 access token for the API."""
    config = current_app.config
    now = utcnow()
    ttl = config["JWT_TTL_SECONDS"]
    claims = {
        "sub": str(user.id),
        "email": user.email,
        "role": user.role,
        "company": user.company.slug if user.company else None,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "aud": config["JWT_AUDIENCE"],
        "iss": "module-registry-service",
        # Signing out everywhere moves the version, and with it every token issued before.
        "sv": user.session_version,
    }
    token = jwt.encode(claims, config["SECRET_KEY"], algorithm="HS256")
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}


def _user_from_jwt(token: str) -> User:
    """Our own HS256 tokens, or the platform auth service's (RS256/ES256 by its key set).
    The header's algorithm picks the path, and each path accepts only its own family, so a
    token signed with HMAC over the public key can never pass as the auth service's."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The token is not valid: {exc}.") from exc
    config = current_app.config
    if header.get("alg") in config["AUTH_ALGORITHMS"] and config.get("AUTH_JWKS_URL"):
        from portal.services.accounts.platform_auth import user_from_platform_token

        return user_from_platform_token(token, header)
    try:
        claims = jwt.decode(
            token,
            config["SECRET_KEY"],
            algorithms=["HS256"],
            audience=config["JWT_AUDIENCE"],
            issuer="module-registry-service",
            options={"require": ["exp", "iat", "sub", "aud", "sv"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The token is not valid: {exc}.") from exc
    sub = str(claims.get("sub", ""))
    user = db.session.get(User, int(sub)) if sub.isdigit() else None
    if user is None or not user.active:
        raise Unauthorized("The token's user does not exist.")
    if claims["sv"] != user.session_version:
        raise Unauthorized("The token was issued before its user signed out everywhere.")
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_for_bearer(token: str) -> User:
    """The user a bearer token (personal API token or JWT) belongs to. Raises Unauthorized."""
    token = (token or "").strip()
    if not token:
        raise Unauthorized("A bearer token is required.")
    if not token.startswith(API_TOKEN_PREFIX):
        return _user_from_jwt(token)
    api_token = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == _token_hash(token))
    ).scalar()
    if api_token is None or api_token.revoked_at is not None or not api_token.user.active:
        raise Unauthorized("The API token is not valid or has been revoked.")
    user = api_token.user
    _note_use(api_token)
    return user


def _note_use(api_token: ApiToken) -> None:
    """Set the token's last_used_at, unless it was set less than TOKEN_USE_PRECISION ago."""
    now = utcnow()
    stale = now - TOKEN_USE_PRECISION
    if api_token.last_used_at is not None and api_token.last_used_at > stale:
        return
    with unit_of_work():
        db.session.execute(
            sa.update(ApiToken)
            .where(
                ApiToken.id == api_token.id,
                sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )


def create_api_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new personal token; the plain token is returned once and never stored."""
    name = (name or "").strip() or "API token"
    if len(name) > 100:
        raise ValidationFailed(
            "The token name is too long.",
            errors=[{"pointer": "/name", "message": "at most 100 characters"}],
        )
    plain = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with unit_of_work():
        token = ApiToken(
            user_id=user.id, name=name, token_hash=_token_hash(plain), prefix=plain[:10]
        )
        db.session.add(token)
    return token, plain


def list_api_tokens(user: User) -> list[ApiToken]:
    return list(
        db.session.execute(
            sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        ).scalars()
    )


def revoke_api_token(token_id: int, *, actor: User) -> ApiToken:
    """Revoke one of the actor's own tokens. Raises NotFound (also for others' tokens)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != actor.id:
        raise NotFound("No such token.")
    if token.revoked_at is not None:
        raise Conflict("This token has been revoked already.")
    with unit_of_work():
        token.revoked_at = utcnow()
    return token


def user_by_email(email: str) -> User:
    """Raises NotFound."""
    user = db.session.execute(sa.select(User).where(User.email == normalize_email(email))).scalar()
    if user is None:
        raise NotFound(f"No user with the email {email}.")
    return user
