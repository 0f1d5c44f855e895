from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from django.utils import timezone

from config.accounts.models import ApiToken, hash_token
from config.accounts.roles import ADMIN, ROLES, sync_role_groups


@transaction.atomic
def user_set_role(*, user: AbstractUser, role: str) -> AbstractUser:
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of: {', '.join(ROLES)}.")
    group = Group.objects.filter(name=role).first()
    if group is None:
        sync_role_groups()
        group = Group.objects.get(name=role)
    user.groups.remove(*Group.objects.filter(name__in=ROLES))
    user.groups.add(group)
    # Admins manage users in the Django admin, which needs staff status.
    user.is_staff = role == ADMIN
    user.is_superuser = role == ADMIN
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


@transaction.atomic
def user_create(*, username: str, password: str, role: str, email: str = "") -> AbstractUser:
    user_model = get_user_model()
    user = user_model(username=username, email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user_set_role(user=user, role=role)


@transaction.atomic
def apitoken_create(*, user: AbstractUser, name: str = "") -> str:
    raw = ApiToken.generate_raw()
    ApiToken.objects.create(user=user, name=name, key_hash=hash_token(raw), prefix=raw[:12])
    return raw


def apitoken_authenticate(*, raw: str) -> AbstractUser | None:
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # One write a minute at most: a busy script must not turn every read into a write.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
