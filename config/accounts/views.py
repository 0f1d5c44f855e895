"""Pages for sign-in lockouts, one's own API tokens, and (admins) users. Thin: check the permission, validate
the form, call one service, render or redirect."""

from __future__ import annotations

import datetime as dt

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django_tables2 import RequestConfig

from config.accounts.addresses import client_address
from config.accounts.filters import UserFilter
from config.accounts.forms import TokenCreateForm, UserCreateForm, UserPasswordForm, UserRoleForm
from config.accounts.models import ApiToken
from config.accounts.roles import role_of
from config.accounts.services import (
    apitoken_issue,
    apitoken_revoke,
    apitoken_revoke_all,
    user_create,
    user_deactivate,
    user_reactivate,
    user_set_password,
    user_set_role,
)
from config.accounts.tables import ApiTokenTable, UserTable, UserTokenTable
from config.mixins import RoleRequiredMixin
from config.tables import TableListView, safe_next

TOKENS_PER_PAGE = 30
# The token forms this session has already sent (their `once` values), newest last; a few are enough: a resend
# is a reload of the page the form led to.
SENT_TOKEN_FORMS = "accounts_sent_token_forms"
SENT_TOKEN_FORMS_KEPT = 10

# --- sign-in lockout -------------------------------------------------------------------------------------------


def _lock_end(attempts, *, limit: int, cool_off: dt.timedelta | None) -> tuple[bool, dt.datetime | None]:
    """Whether this lock holds, and when it lifts (None: only an admin lifts it). axes sums the failures of the
    rows newer than the cool-off, so the lock lifts once enough of the oldest rows have aged out for the rest to
    sum below the limit."""
    rows = list(attempts.order_by("attempt_time", "pk").values_list("attempt_time", "failures_since_start"))
    remaining = sum(failures for _, failures in rows)
    if remaining < limit:
        return False, None
    if cool_off is None:
        return True, None
    for attempt_time, failures in rows:
        remaining -= failures
        if remaining < limit:
            return True, attempt_time + cool_off
    return True, None  # not reached: the loop ends with remaining 0


def locked_out(request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None):
    """AXES_LOCKOUT_CALLABLE: the page for a refused sign-in (web or Django admin), in the site's own layout.

    Says which lock applies (the username, the address or both) and when it ends (tries while locked out are not
    counted, so the time shown holds).
    """
    username = get_client_username(request, credentials) or ""
    limit = get_failure_limit(request, credentials)
    cool_off = get_cool_off(request)
    address = getattr(request, "axes_ip_address", None) or client_address(request)
    recent = AccessAttempt.objects.all()
    if cool_off:
        recent = recent.filter(attempt_time__gt=timezone.now() - cool_off)
    locks = []
    for lock, attempts in (
        ("username", recent.filter(username=username)),
        ("address", recent.filter(ip_address=address)),
    ):
        if lock == "username" and not username:
            continue
        holds, ends = _lock_end(attempts, limit=limit, cool_off=cool_off)
        if holds:
            locks.append((lock, ends))
    retry_at = None
    if cool_off:
        # Nothing found would be a lock that another process just lifted: the cool-off is then the honest answer.
        retry_at = max((ends for _, ends in locks if ends), default=None) or timezone.now() + cool_off
    names = {lock for lock, _ in locks} or {"address"}
    context = {
        "failure_limit": limit,
        "username": username if "username" in names else "",
        "address_locked": "address" in names,
        "retry_at": retry_at,
    }
    locked = render(request, "registration/locked_out.html", context, status=429)
    if retry_at is not None:
        locked["Retry-After"] = str(max(1, int((retry_at - timezone.now()).total_seconds())))
    return locked


# --- my API tokens ---------------------------------------------------------------------------------------------


class TokenListView(LoginRequiredMixin, View):
    """Every signed-in user's own tokens: list, and create (the raw token is in this one response, nowhere else)."""

    http_method_names = ["get", "post", "head", "options"]
    template_name = "accounts/token_list.html"

    def render_page(self, form: TokenCreateForm, *, status: int = 200, created: tuple | None = None) -> HttpResponse:
        tokens = ApiToken.objects.filter(user=self.request.user).select_related("user")
        table = ApiTokenTable(tokens)
        RequestConfig(self.request, paginate={"per_page": TOKENS_PER_PAGE}).configure(table)
        context = {"form": form, "table": table}
        if created is not None:
            context["new_token"], context["new_raw"] = created
        response = render(self.request, self.template_name, context, status=status)
        if created is not None:
            # The raw token must not be kept by the browser's cache or a proxy.
            response["Cache-Control"] = "no-store"
        return response

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_page(TokenCreateForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TokenCreateForm(data=request.POST)
        if form.is_valid():
            once = form.cleaned_data["once"]
            sent = request.session.get(SENT_TOKEN_FORMS, [])
            if once and once in sent:
                messages.info(
                    request,
                    "That form was already sent: its token was created then and shown once. It is in the list "
                    "below; revoke it there if you did not copy it.",
                )
                return HttpResponseRedirect(reverse("accounts:tokens"))
            try:
                created = apitoken_issue(
                    user=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at, actor=request.user
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                if once:
                    request.session[SENT_TOKEN_FORMS] = [*sent, once][-SENT_TOKEN_FORMS_KEPT:]
                # Rendered, not redirected: a redirect would have to park the raw token somewhere until the next
                # request (a session row, a cookie), and it must exist nowhere but in this one page.
                return self.render_page(TokenCreateForm(), created=created)
        return self.render_page(form, status=400)


class TokenRevokeView(LoginRequiredMixin, View):
    """Revoke one of one's own tokens: GET asks to confirm, POST revokes. Someone else's token is a 404."""

    http_method_names = ["get", "post", "head", "options"]

    def get_token(self, pk: int) -> ApiToken:
        return get_object_or_404(ApiToken.objects.select_related("user"), pk=pk, user=self.request.user)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return render(request, "accounts/token_confirm_revoke.html", {"token": self.get_token(pk)})

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        token = self.get_token(pk)
        apitoken_revoke(token=token, actor=request.user)
        messages.success(request, f"Revoked token {token.prefix}…{f' ({token.name})' if token.name else ''}.")
        return HttpResponseRedirect(reverse("accounts:tokens"))


# --- users (admins) --------------------------------------------------------------------------------------------


def user_rows():
    return (
        get_user_model()
        .objects.annotate(token_count=Count("api_tokens"))
        .prefetch_related("groups")
        .order_by("username", "pk")
    )


class UserListView(TableListView):
    permission_required = "auth.view_user"
    filterset_class = UserFilter
    table_class = UserTable
    template_name = "accounts/user_list.html"
    partial_template_name = "accounts/partials/_user_table.html"
    list_url_name = "accounts:users"

    def get_queryset(self):
        return user_rows()


class UserCreateView(RoleRequiredMixin, View):
    permission_required = "auth.add_user"
    http_method_names = ["get", "post", "head", "options"]
    template_name = "accounts/user_form.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name, {"form": UserCreateForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = UserCreateForm(data=request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = user_create(
                    username=data["username"],
                    email=data["email"],
                    role=data["role"],
                    password=data["password1"],
                    actor=request.user,
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Created {user.get_username()} with the role {data['role']}.")
                return HttpResponseRedirect(reverse("accounts:user-detail", args=[user.pk]))
        return render(request, self.template_name, {"form": form}, status=400)


class UserPageMixin(RoleRequiredMixin):
    permission_required = "auth.change_user"

    def get_user(self, pk: int):
        return get_object_or_404(get_user_model().objects.prefetch_related("groups"), pk=pk)

    def back_to_user(self, user) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("accounts:user-detail", args=[user.pk]))


class UserDetailView(UserPageMixin, View):
    """One user: role, status and tokens, with the admin's actions (each a POST; the destructive ones confirm)."""

    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        return render_user_detail(request, user, UserRoleForm(initial={"role": role_of(user)}))


def render_user_detail(request: HttpRequest, user, role_form: UserRoleForm, *, status: int = 200) -> HttpResponse:
    tokens = UserTokenTable(ApiToken.objects.filter(user=user).select_related("user"))
    context = {"subject": user, "subject_role": role_of(user), "role_form": role_form, "tokens": tokens}
    return render(request, "accounts/user_detail.html", context, status=status)


class UserRoleView(UserPageMixin, View):
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        form = UserRoleForm(data=request.POST)
        if form.is_valid():
            role = form.cleaned_data["role"]
            try:
                user_set_role(user=user, role=role, actor=request.user)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, f"{user.get_username()} is now {role}.")
            return self.back_to_user(user)
        return render_user_detail(request, user, form, status=400)


class UserConfirmView(UserPageMixin, View):
    """A destructive action on a user: GET shows what will happen, POST does it."""

    http_method_names = ["get", "post", "head", "options"]
    title = ""
    explanation = ""
    button = ""

    def act(self, request: HttpRequest, user) -> str:
        raise NotImplementedError

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        context = {
            "subject": user,
            "title": self.title.format(user=user.get_username()),
            "explanation": self.explanation,
            "button": self.button,
            "action_url": request.path,
            "token_count": ApiToken.objects.filter(user=user).count(),
        }
        return render(request, "accounts/user_confirm.html", context)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        try:
            messages.success(request, self.act(request, user))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(safe_next(request) or reverse("accounts:user-detail", args=[user.pk]))


class UserDeactivateView(UserConfirmView):
    title = "Deactivate {user}?"
    explanation = (
        "They can no longer sign in; their open sessions and API tokens stop working at once. Nothing is deleted "
        "and you can reactivate them later."
    )
    button = "Deactivate"

    def act(self, request: HttpRequest, user) -> str:
        user_deactivate(user=user, actor=request.user)
        return f"Deactivated {user.get_username()}."


class UserReactivateView(UserPageMixin, View):
    http_method_names = ["post", "options"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        user_reactivate(user=user, actor=request.user)
        messages.success(request, f"Reactivated {user.get_username()}.")
        return self.back_to_user(user)


class UserRevokeTokensView(UserConfirmView):
    title = "Revoke every API token of {user}?"
    explanation = "Scripts using them get 401 from now on. The user can create new ones on their tokens page."
    button = "Revoke all tokens"

    def act(self, request: HttpRequest, user) -> str:
        count = apitoken_revoke_all(user=user, actor=request.user)
        return f"Revoked {count} token{'' if count == 1 else 's'} of {user.get_username()}."


class UserPasswordView(UserPageMixin, View):
    http_method_names = ["get", "post", "head", "options"]
    template_name = "accounts/user_password.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        return render(request, self.template_name, {"subject": user, "form": UserPasswordForm(user)})

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        user = self.get_user(pk)
        form = UserPasswordForm(user, data=request.POST)
        if not form.is_valid():
            return render(request, self.template_name, {"subject": user, "form": form}, status=400)
        user_set_password(user=user, password=form.cleaned_data["new_password1"], actor=request.user)
        if user.pk == request.user.pk:
            # The admin's own other sessions end; this one stays signed in.
            update_session_auth_hash(request, user)
        messages.success(request, f"Set a new password for {user.get_username()}; their sessions have ended.")
        return self.back_to_user(user)
