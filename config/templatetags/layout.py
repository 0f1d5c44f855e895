"""What every page's layout repeats, rendered once per distinct input and process (config.fragments.RenderedByKey):
the nav (`{% main_nav %}`) and a list's search-and-filter form (`{% filter_form … %}`).

Each was rendered through the template engine on every request (~0.5 ms and ~0.7 ms of a 20 ms list page) though
its markup depends only on a few values: the page, the user's name, role and the permissions the nav shows; the
form's values. Those values are the key, so nothing shown can be stale.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.loader import render_to_string
from django.urls import get_script_prefix
from django.utils.safestring import SafeString

from config.fragments import RenderedByKey

register = template.Library()

_NAV = RenderedByKey("includes/nav.html")
# The permissions whose links the nav shows or leaves out.
NAV_PERMISSIONS = (
    ("can_pull", "modelfiles.request_download"),
    ("can_audit", "audit.view_auditentry"),
    ("can_view_users", "auth.view_user"),
)


@register.simple_tag(takes_context=True)
def main_nav(context: template.Context) -> SafeString:
    request = context.get("request")
    user = context.get("user")
    match = getattr(request, "resolver_match", None)
    namespace, page = (match.namespace, match.url_name) if match is not None else ("", "")
    # An address that matched no URL (a 404 page) has no resolver_match: nothing is marked current.
    values: dict[str, Any] = {"current": namespace or page or "", "page": page or "", "signed_in": False}
    if user is not None and user.is_authenticated:
        values.update(
            signed_in=True,
            username=user.get_username(),
            user_role=str(context.get("user_role") or ""),
            is_staff=user.is_staff,
            **{name: user.has_perm(permission) for name, permission in NAV_PERMISSIONS},
        )
    key = (get_script_prefix(), *sorted(values.items()))
    return _NAV.render(request, key, lambda: values)


FILTER_FORM_TEMPLATE = "includes/filter_form.html"
_FILTER_FORMS = RenderedByKey(FILTER_FORM_TEMPLATE)


@register.simple_tag(takes_context=True)
def filter_form(
    context: template.Context, *, form_id: str, target: str, indicator: str, placeholder: str, button: str = ""
) -> SafeString:
    """includes/filter_form.html for the list's filterset (`filter`) with the given parameters.

    Rendered once per filterset class, parameters and values shown when the filterset says its form is a function
    of those alone (`form_is_fixed = True`: no options read from the database, nothing per user) and the form
    has no errors; otherwise rendered each time."""
    filterset = context["filter"]
    form = filterset.form
    values = {
        "filter": filterset,
        "form_id": form_id,
        "target": target,
        "indicator": indicator,
        "placeholder": placeholder,
        "button": button,
        "list_url": context.get("list_url", ""),
        "filtering": bool(context.get("filtering")),
    }
    if not getattr(filterset, "form_is_fixed", False) or form.errors:
        return SafeString(render_to_string(FILTER_FORM_TEMPLATE, values, request=context.get("request")))
    shown = tuple((bound.name, repr(bound.value())) for bound in form)
    key = (type(filterset), *((name, value) for name, value in values.items() if name != "filter"), shown)
    return _FILTER_FORMS.render(context.get("request"), key, lambda: values)


_REMEMBERED: dict[str, RenderedByKey] = {}


@register.simple_tag(takes_context=True)
def remember(context: template.Context, template_name: str, *shown: Any) -> SafeString:
    """`{% include template_name %}`, rendered once per process for each distinct `shown`, which must be every
    value the template shows but the CSRF token: `{% remember "includes/page_sizes.html" this_url per_page %}`.

    For the small parts of a list that its links and forms repeat on every page (page sizes, export links, the
    column picker): each is a function of a few values, and rendering one cost more than the table's name column.
    """
    rendered = _REMEMBERED.get(template_name)
    if rendered is None:
        rendered = _REMEMBERED[template_name] = RenderedByKey(template_name)
    key = (get_script_prefix(), *map(repr, shown))
    return rendered.render(context.get("request"), key, context.flatten)
