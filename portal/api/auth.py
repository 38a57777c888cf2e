"""POST /api/v1/auth/token: email and password for a short-lived JWT."""

from __future__ import annotations

from flask import jsonify

from portal.api import bp, json_body
from portal.services import accounts
from portal.services.errors import ValidationFailed


@bp.post("/auth/token")
def issue_token():
    body = json_body()
    errors = [
        {"pointer": f"/{key}", "message": "is required"}
        for key in ("email", "password")
        if not isinstance(body.get(key), str) or not body[key]
    ]
    if errors:
        raise ValidationFailed("Email and password are required.", errors=errors)
    user = accounts.authenticate(body["email"], body["password"])
    return jsonify(accounts.issue_jwt(user))
