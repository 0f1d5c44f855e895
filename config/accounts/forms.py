"""Forms of the token and user pages. They shape input; the rules that matter live in the services."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from crispy_forms.helper import FormHelper
from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm
from django.utils import timezone

from config.accounts.models import ApiToken, no_control_characters
from config.accounts.roles import ROLES, VIEWER

NEVER = ""
EXPIRY_CHOICES = [
    (NEVER, "Never"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
]
ROLE_CHOICES = [(role, role.capitalize()) for role in ROLES]


def _helper() -> FormHelper:
    helper = FormHelper()
    helper.form_tag = False
    helper.disable_csrf = True  # the page's <form> carries the token
    return helper


def expiry_from_days(days: int | None) -> dt.datetime | None:
    return None if days is None else timezone.now() + dt.timedelta(days=days)


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label="Label",
        max_length=ApiToken._meta.get_field("name").max_length,
        required=False,
        validators=[no_control_characters],
        strip=False,
        help_text="What the token is for, e.g. “ci-script” or “laptop”, to tell your tokens apart.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    expires_in = forms.TypedChoiceField(
        label="Expires",
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        help_text="An expired token is refused; make a new one then.",
    )
    # A fresh value in every rendered form: the same value posted twice is the browser resending the form (a
    # reload of the page that showed the new token), which must not issue a second token.
    once = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.helper = _helper()
        if not self.is_bound:
            self.initial["once"] = secrets.token_urlsafe(16)

    @property
    def expires_at(self) -> dt.datetime | None:
        return expiry_from_days(self.cleaned_data.get("expires_in"))


class UserCreateForm(forms.Form):
    username = forms.CharField(
        max_length=get_user_model()._meta.get_field("username").max_length,
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=VIEWER)
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password (again)", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.helper = _helper()

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("A user with that username already exists.", code="unique")
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first and data.get("username"):
            candidate = get_user_model()(username=data["username"], email=data.get("email", ""))
            try:
                password_validation.validate_password(first, candidate)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES, widget=forms.Select(attrs={"class": "form-select"}))

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.helper = _helper()


class UserPasswordForm(SetPasswordForm):
    """Django's own: two fields, the password validators, no old password (an admin sets it)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.helper = _helper()


class SignInForm(AuthenticationForm):
    """The login form. A deactivated user who types the right password is told so: Django's backend refuses
    inactive users like a wrong password, which left them retyping it and then locked out for guessing."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "inactive": "This account is deactivated. Ask an admin to reactivate it.",
    }

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login" and not getattr(self.request, "axes_locked_out", False):
                self._refuse_if_deactivated()
            raise

    def _refuse_if_deactivated(self) -> None:
        # Only someone who knows the password learns that the account exists and is deactivated.
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not username or not password:
            return
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: username}, is_active=False).first()
        if user is not None and user.check_password(password):
            raise forms.ValidationError(self.error_messages["inactive"], code="inactive")
