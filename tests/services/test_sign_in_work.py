"""An unknown e-mail costs the same password-hash work as a known one, so sign-in timing
does not tell which accounts exist (reliability review D3: 114 ms against 8 ms)."""

from __future__ import annotations

import pytest
from werkzeug.security import check_password_hash

from portal.services.accounts import users
from portal.services.errors import Unauthorized
from tests.helpers import PASSWORD


def _method(password_hash: str) -> str:
    return password_hash.split("$", 1)[0]  # e.g. "pbkdf2:sha256:600000"


@pytest.mark.parametrize("method", ["pbkdf2:sha256:1000", "pbkdf2:sha256:20000", "scrypt"])
def test_the_stand_in_hash_for_an_unknown_email_uses_the_configured_method(app, people, method):
    app.config["PASSWORD_HASH_METHOD"] = method
    try:
        with app.app_context():
            user = users.create_user("work@acme.test", PASSWORD, "developer", "acme")
            dummy = users._dummy_hash()
            assert _method(dummy) == _method(user.password_hash)
            assert not check_password_hash(dummy, PASSWORD)
            for email in ("work@acme.test", "nobody@acme.test"):
                with pytest.raises(Unauthorized):
                    users.authenticate(email, "wrong password")
    finally:
        app.config["PASSWORD_HASH_METHOD"] = "pbkdf2:sha256:1000"
