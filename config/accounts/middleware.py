"""The signed-in user of a request, and their permissions, from the cache (issue 12, item 2).

Django looks the user up on every request (one query) and their permissions on the first `has_perm` (two more);
a live page that polls every second pays them a hundred times a second for a hundred viewers. Here the user,
loaded and checked as Django does, is kept in the cache with the permissions filled in, under the user's id.

Staying correct:
- The session still decides who is signed in: it is read first (a sign-out ends it), and the session's hash of
  the password is checked against the kept user, as Django does, so a changed password still signs others out.
- Any change to a user, their groups or their own permissions made through Django, and any change to the
  permissions of a group (the roles), drops the kept entries of everyone it concerns (`forget_users`), for every
  process that shares the cache (Redis); the next request loads them again. A deactivated user or a revoked role
  thus takes effect on their next request.
- Anything else (raw SQL, or another process when each has a cache of its own) is seen at most
  AUTH_CACHE_SECONDS later, when the entry runs out.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser, Group
from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

CACHE_ALIAS = "default"


def user_key(user_id: object) -> str:
    return f"auth:user:{user_id}"


def generation_key(user_id: object) -> str:
    return f"auth:generation:{user_id}"


def cached_user(request: HttpRequest):
    """What `django.contrib.auth.get_user` answers, from the cache when the session's user was loaded lately.

    The user is kept with the generation it was read under; `forget_users` starts a new one. A request that read
    the user just before a change and stores it just after stores it under the old generation, which no request
    takes for the current one."""
    session = request.session
    user_id, backend_path = session.get(SESSION_KEY), session.get(BACKEND_SESSION_KEY)
    if user_id is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser() if user_id is None else auth.get_user(request)
    cache = caches[CACHE_ALIAS]
    found = cache.get_many([user_key(user_id), generation_key(user_id)])
    generation = found.get(generation_key(user_id)) or "none"
    kept = found.get(user_key(user_id))
    if kept is not None and kept[0] == generation:
        user = kept[1]
        session_hash = session.get(HASH_SESSION_KEY)
        if session_hash and constant_time_compare(session_hash, user.get_session_auth_hash()):
            return user
        # Not the password this session was signed in with (or a rotated secret): Django decides, and it ends the
        # session when neither the current nor a fallback secret verifies it.
    user = auth.get_user(request)
    if user.is_authenticated and str(user.pk) == str(user_id):
        user.get_all_permissions()  # fills the backend's per-user permission cache, which is kept with the user
        cache.set(user_key(user_id), (generation, user), settings.AUTH_CACHE_SECONDS)
    return user


class CachedAuthenticationMiddleware(AuthenticationMiddleware):
    """Django's AuthenticationMiddleware with `request.user` from `cached_user` (async views keep Django's)."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: _request_user(request))


def _request_user(request: HttpRequest):
    if not hasattr(request, "_cached_user"):
        request._cached_user = cached_user(request)
    return request._cached_user


def forget_users(user_ids: Iterable[object]) -> None:
    """Drop what is kept of these users, now and again once the change commits (a request that read the rows in
    between must not keep what it read): a new generation, so what was kept is not taken any more."""
    keys = [generation_key(user_id) for user_id in user_ids]
    if not keys:
        return
    cache = caches[CACHE_ALIAS]

    def new_generation() -> None:
        # No expiry: kept users run out within AUTH_CACHE_SECONDS anyway.
        cache.set_many(dict.fromkeys(keys, secrets.token_hex(8)), None)

    new_generation()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(new_generation)


# Actions of m2m_changed after which (or, for a clear, before which, while the members can still be read) the
# users concerned are forgotten.
_CHANGES = ("post_add", "post_remove", "pre_clear")


def _user_changed(sender, instance, **kwargs) -> None:
    forget_users([instance.pk])


def _memberships_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """user.groups or user.user_permissions changed, from the user's side or the group's / permission's."""
    if action not in _CHANGES:
        return
    if not reverse:
        forget_users([instance.pk])
    elif action == "pre_clear":
        forget_users(list(instance.user_set.values_list("pk", flat=True)))
    else:
        forget_users(pk_set)


def _group_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """A role's permissions changed: everyone in the group."""
    if action not in _CHANGES:
        return
    if not reverse:
        groups = [instance.pk]
    elif action == "pre_clear":
        groups = list(instance.group_set.values_list("pk", flat=True))
    else:
        groups = list(pk_set)
    members = auth.get_user_model().objects.filter(groups__in=groups).values_list("pk", flat=True).distinct()
    forget_users(list(members))


def connect_signals() -> None:
    user_model = auth.get_user_model()
    uid = "config.accounts.middleware"
    post_save.connect(_user_changed, sender=user_model, dispatch_uid=f"{uid}.saved")
    post_delete.connect(_user_changed, sender=user_model, dispatch_uid=f"{uid}.deleted")
    m2m_changed.connect(_memberships_changed, sender=user_model.groups.through, dispatch_uid=f"{uid}.groups")
    m2m_changed.connect(
        _memberships_changed, sender=user_model.user_permissions.through, dispatch_uid=f"{uid}.permissions"
    )
    m2m_changed.connect(_group_permissions_changed, sender=Group.permissions.through, dispatch_uid=f"{uid}.roles")
