"""POST /api/v1/auth/token: email and password for a short-lived JWT."""

from __future__ import annotations

from flask import jsonify, request

from portal.api.base import bp, validated_body
from portal.api.openapi import UNAVAILABLE, document
from portal.api.schemas import AUTH_TOKEN_REQUEST, AUTH_TOKEN_RESPONSE
from portal.services.accounts import users


@bp.post("/auth/token")
@document(
    summary="Issue a JWT for an email and password",
    description="A short-lived access token for `Authorization: Bearer`. Bad credentials "
    "get the same 401 whether the email exists or not; repeated failures for one email "
    "get 429 until the window ends.",
    tags=["Auth"],
    auth=False,
    request={"application/json": AUTH_TOKEN_REQUEST},
    responses={
        200: AUTH_TOKEN_RESPONSE,
        400: "The body is not a JSON object.",
        401: "Bad credentials.",
        422: "Email or password missing or not text, or an unknown field.",
        429: "Too many failed sign-ins for this email; see `Retry-After`.",
        503: UNAVAILABLE,
    },
)
def issue_token():
    credentials = validated_body()
    user = users.authenticate(
        credentials["email"], credentials["password"], address=request.remote_addr
    )
    return jsonify(users.issue_jwt(user))
