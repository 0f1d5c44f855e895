"""Writes for users, roles and API tokens. Every change is recorded in the audit log in the same transaction;
no password and no raw token ever reaches an entry."""

from __future__ import annotations

import datetime as dt
import math

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from config.accounts.models import ApiToken, BearerFailureWindow, TablePreference, hash_token
from config.accounts.roles import ADMIN, ROLES, role_of, sync_role_groups
from config.audit.services import audit_record

# --- users and roles -------------------------------------------------------------------------------------------


def user_snapshot(user: AbstractUser) -> dict[str, object]:
    """What the audit log keeps of a user: never the password (not even its hash)."""
    return {"username": user.get_username(), "email": user.email, "role": role_of(user), "is_active": user.is_active}


def _active_admins():
    return get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__name=ADMIN), is_active=True).distinct()


def _ensure_an_admin_remains(*, user: AbstractUser, stays_admin: bool) -> None:
    """Refuse a change after which nobody could manage users any more (the last admin demoting or deactivating
    themselves, or being demoted by a script)."""
    if stays_admin or not user.is_active or role_of(user) != ADMIN:
        return
    if not _active_admins().exclude(pk=user.pk).exists():
        raise ValidationError(
            f"{user.get_username()} is the only active admin: make another user an admin first, "
            "or nobody could manage users any more.",
            code="last_admin",
        )


def _apply_role(*, user: AbstractUser, role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}; choose one of: {', '.join(ROLES)}.", code="invalid_role")
    group = Group.objects.filter(name=role).first()
    if group is None:
        sync_role_groups()
        group = Group.objects.get(name=role)
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(group)
    # Admins may also use the Django admin, which needs staff status.
    user.is_staff = role == ADMIN
    user.is_superuser = role == ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    # role_of() caches nothing, but Django caches permissions per user object.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)


@transaction.atomic
def user_create(
    *, username: str, password: str, role: str, email: str = "", actor: AbstractUser | None = None
) -> AbstractUser:
    user_model = get_user_model()
    user = user_model(username=username, email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    _apply_role(user=user, role=role)
    audit_record(
        actor=actor,
        kind="user",
        action="create",
        object_id=user.pk,
        object_repr=user.get_username(),
        after=user_snapshot(user),
    )
    return user


@transaction.atomic
def user_set_role(*, user: AbstractUser, role: str, actor: AbstractUser | None = None) -> AbstractUser:
    before = role_of(user)
    _ensure_an_admin_remains(user=user, stays_admin=role == ADMIN)
    # Applied even when the role looks unchanged: a user without any role group reads as a viewer but holds
    # none of a viewer's permissions until the group is added.
    _apply_role(user=user, role=role)
    if before == role:
        return user
    audit_record(
        actor=actor,
        kind="role",
        action="update",
        object_id=user.pk,
        object_repr=user.get_username(),
        before={"role": before},
        after={"role": role},
    )
    return user


def _set_active(*, user: AbstractUser, active: bool, actor: AbstractUser | None) -> AbstractUser:
    if user.is_active == active:
        return user
    if not active:
        _ensure_an_admin_remains(user=user, stays_admin=False)
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(
        actor=actor,
        kind="user",
        action="reactivate" if active else "deactivate",
        object_id=user.pk,
        object_repr=user.get_username(),
        before={"is_active": not active},
        after={"is_active": active},
    )
    return user


@transaction.atomic
def user_deactivate(*, user: AbstractUser, actor: AbstractUser | None = None) -> AbstractUser:
    """The user can no longer sign in; their sessions and API tokens stop working at once (both check
    is_active on every request). Nothing is deleted, so the audit log and their aliases keep their name."""
    return _set_active(user=user, active=False, actor=actor)


@transaction.atomic
def user_reactivate(*, user: AbstractUser, actor: AbstractUser | None = None) -> AbstractUser:
    return _set_active(user=user, active=True, actor=actor)


@transaction.atomic
def user_set_password(*, user: AbstractUser, password: str, actor: AbstractUser | None = None) -> AbstractUser:
    """A new password set by an admin. Every session of the user ends: Django keeps a hash of the password in
    each session and signs out a session whose hash no longer matches."""
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(
        actor=actor,
        kind="user",
        action="set_password",
        object_id=user.pk,
        object_repr=user.get_username(),
        after={"sessions_ended": True},
    )
    return user


# --- API tokens ------------------------------------------------------------------------------------------------


def token_snapshot(token: ApiToken) -> dict[str, object]:
    """What the audit log keeps of a token: its label and the prefix everyone can see, never the key."""
    return {
        "user": token.user.get_username(),
        "label": token.name,
        "prefix": token.prefix,
        "expires_at": token.expires_at,
    }


@transaction.atomic
def apitoken_issue(
    *,
    user: AbstractUser,
    name: str = "",
    expires_at: dt.datetime | None = None,
    actor: AbstractUser | None = None,
) -> tuple[ApiToken, str]:
    """Make a token and return it with its raw key, which exists only here: the caller shows it once."""
    if not user.is_active:
        raise ValidationError(f"{user.get_username()} is inactive; a token for them would be refused.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."}, code="expired")
    raw = ApiToken.generate_raw()
    token = ApiToken(user=user, name=name, key_hash=hash_token(raw), prefix=raw[:12], expires_at=expires_at)
    token.full_clean(exclude=["user", "key_hash", "prefix"])
    token.save()
    audit_record(
        actor=actor,
        kind="token",
        action="create",
        object_id=token.pk,
        object_repr=str(token),
        after=token_snapshot(token),
    )
    return token, raw


def apitoken_create(
    *,
    user: AbstractUser,
    name: str = "",
    expires_at: dt.datetime | None = None,
    actor: AbstractUser | None = None,
) -> str:
    """`apitoken_issue` for callers that need only the raw key (scripts, tests)."""
    return apitoken_issue(user=user, name=name, expires_at=expires_at, actor=actor)[1]


@transaction.atomic
def apitoken_revoke(*, token: ApiToken, actor: AbstractUser | None = None) -> None:
    snapshot = token_snapshot(token)
    token_id, token_repr = token.pk, str(token)
    token.delete()
    audit_record(
        actor=actor, kind="token", action="revoke", object_id=token_id, object_repr=token_repr, before=snapshot
    )


@transaction.atomic
def apitoken_revoke_all(*, user: AbstractUser, actor: AbstractUser | None = None) -> int:
    tokens = list(ApiToken.objects.select_related("user").filter(user=user).order_by("pk"))
    for token in tokens:
        apitoken_revoke(token=token, actor=actor)
    return len(tokens)


class TokenRefused(Exception):
    """A bearer token that does not authenticate; the message says why, for the 401."""


INVALID_TOKEN_MESSAGE = "Invalid or revoked API token."


def apitoken_verify(*, raw: str) -> ApiToken:
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        raise TokenRefused(INVALID_TOKEN_MESSAGE)
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        when = token.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise TokenRefused(f"This API token expired on {when}; create a new one on the My API tokens page.")
    # One write a minute at most: a busy script must not turn every read into a write.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def apitoken_authenticate(*, raw: str) -> AbstractUser | None:
    try:
        return apitoken_verify(raw=raw).user
    except TokenRefused:
        return None


# --- failed bearer tokens per client address -------------------------------------------------------------------


def _failure_window() -> dt.timedelta:
    return dt.timedelta(seconds=settings.API_TOKEN_FAILURE_WINDOW_SECONDS)


def bearerfailure_wait(*, address: str) -> int:
    """Seconds this address must wait before its next bearer token is even looked up (0: go ahead)."""
    now = timezone.now()
    row = BearerFailureWindow.objects.filter(address=address, window_started_at__gt=now - _failure_window()).first()
    if row is None or row.failures < settings.API_TOKEN_FAILURE_LIMIT:
        return 0
    return max(1, math.ceil((row.window_started_at + _failure_window() - now).total_seconds()))


def bearerfailure_record(*, address: str) -> None:
    """Count one failed token for the address; the first failure after a window has passed starts a new one."""
    now = timezone.now()
    # An UPDATE with F() is atomic in every database, so two processes counting at once both count.
    counted = BearerFailureWindow.objects.filter(address=address, window_started_at__gt=now - _failure_window()).update(
        failures=F("failures") + 1
    )
    if counted:
        return
    # A new window is rare (one per guessing address per window): the moment to drop the rows of windows that
    # have passed, so the table holds only the addresses failing now.
    BearerFailureWindow.objects.filter(window_started_at__lte=now - _failure_window()).exclude(address=address).delete()
    try:
        with transaction.atomic():
            BearerFailureWindow.objects.update_or_create(
                address=address, defaults={"window_started_at": now, "failures": 1}
            )
    except IntegrityError:
        # Another process created the row at the same moment: count on it.
        BearerFailureWindow.objects.filter(address=address).update(failures=F("failures") + 1)


# --- preferences ---------------------------------------------------------------------------------------------------


@transaction.atomic
def tablepreference_set(*, user: AbstractUser, table: str, hidden_columns: list[str] | None) -> None:
    """Remember which columns `user` hides in `table`; None forgets the choice (back to the table's defaults).

    Not audited: it changes only what this user sees, nothing anyone else relies on.
    """
    if hidden_columns is None:
        TablePreference.objects.filter(user=user, table=table).delete()
        return
    TablePreference.objects.update_or_create(user=user, table=table, defaults={"hidden_columns": hidden_columns})
