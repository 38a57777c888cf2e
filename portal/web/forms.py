"""Form shapes only (required, length, choices); rules needing the database live in services."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class ServiceErrorsMixin:
    def add_service_errors(self, exc) -> None:
        """Show a service's pointer errors next to the fields they name."""
        for pointer, message in exc.fields.items():
            name = pointer.strip("/").split("/")[0]
            field = getattr(self, name, None)
            if field is not None and hasattr(field, "errors"):
                field.errors = [*list(field.errors), message]
            else:
                self.form_errors.append(message)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class TokenForm(ServiceErrorsMixin, FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


class ActionForm(FlaskForm):
    """A button that only POSTs: no fields but the CSRF token."""
