from __future__ import annotations

from datetime import datetime

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.accounts.models import ApiToken
from config.accounts.roles import role_of
from config.tables import TABLE_TEMPLATE

UNSET = "—"


def _time(value: datetime | None, *, empty: str = UNSET) -> SafeString | str:
    if value is None:
        return empty
    exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, naturaltime(value))


class ApiTokenTable(tables.Table):
    name = tables.Column(verbose_name="Label", order_by=("name", "pk"), attrs={"td": {"class": "text-break"}})
    prefix = tables.Column(verbose_name="Token", orderable=False)
    created_at = tables.Column(verbose_name="Created", order_by=("created_at", "pk"))
    last_used_at = tables.Column(verbose_name="Last used", order_by=("last_used_at", "pk"), default="never")
    expires_at = tables.Column(verbose_name="Expires", order_by=("expires_at", "pk"), default="never")
    actions = tables.Column(
        verbose_name="", empty_values=(), orderable=False, attrs={"td": {"class": "text-end row-actions"}}
    )

    class Meta:
        model = ApiToken
        fields = ("name", "prefix", "created_at", "last_used_at", "expires_at")
        template_name = TABLE_TEMPLATE
        attrs = {"class": "table table-sm table-hover align-middle", "id": "token-rows"}
        row_attrs = {"data-token-prefix": lambda record: record.prefix}
        order_by_field = "sort"
        page_field = "page"
        empty_text = "No tokens yet."

    def render_name(self, value: str) -> str:
        return value or UNSET

    def render_prefix(self, value: str) -> SafeString:
        return format_html("<code>{}…</code>", value)

    def render_created_at(self, value: datetime) -> SafeString | str:
        return _time(value)

    def render_last_used_at(self, value: datetime | None) -> SafeString | str:
        return _time(value, empty="never")

    def render_expires_at(self, record: ApiToken, value: datetime | None) -> SafeString | str:
        if value is None:
            return "never"
        if record.is_expired:
            return format_html('<span class="badge text-bg-warning">expired</span> {}', _time(value))
        return _time(value)

    def render_actions(self, record: ApiToken) -> SafeString:
        url = reverse("accounts:token-revoke", args=[record.pk])
        return format_html('<a class="btn btn-sm btn-outline-danger" href="{}">Revoke</a>', url)


class UserTokenTable(ApiTokenTable):
    """A user's tokens as an admin sees them: no per-token buttons (the admin revokes them all at once)."""

    class Meta(ApiTokenTable.Meta):
        exclude = ("actions",)
        attrs = {"class": "table table-sm align-middle", "id": "user-token-rows"}
        orderable = False


class UserTable(tables.Table):
    username = tables.Column(order_by=("username", "pk"))
    role = tables.Column(empty_values=(), orderable=False)
    is_active = tables.Column(verbose_name="Active", order_by=("is_active", "pk"))
    last_login = tables.Column(verbose_name="Last sign-in", order_by=("last_login", "pk"), default="never")
    token_count = tables.Column(
        verbose_name="Tokens", order_by=("token_count", "pk"), attrs={"td": {"class": "text-end"}}
    )

    class Meta:
        template_name = TABLE_TEMPLATE
        attrs = {"class": "table table-sm table-hover align-middle", "id": "user-rows"}
        row_attrs = {"data-username": lambda record: record.get_username()}
        order_by_field = "sort"
        page_field = "page"
        empty_text = None

    def render_username(self, record, value: str) -> SafeString:
        return format_html(
            '<a class="fw-semibold" href="{}">{}</a>', reverse("accounts:user-detail", args=[record.pk]), value
        )

    def render_role(self, record) -> str:
        return role_of(record) or UNSET

    def render_is_active(self, value: bool) -> SafeString:
        if value:
            return format_html('<span class="badge text-bg-success">{}</span>', "active")
        return format_html('<span class="badge text-bg-secondary">{}</span>', "deactivated")

    def render_last_login(self, value: datetime | None) -> SafeString | str:
        return _time(value, empty="never")
