"""A form renderer that writes Django's plain input and textarea widgets in Python.

Each widget of a form is otherwise a template render (input.html including attrs.html): about half of the alias
edit page's time for its twenty fields. The markup is the same as those templates give, attribute for attribute
in the same order; any other widget template (selects, checkboxes, a widget's own template) is rendered by the
template engine as before.
"""

from __future__ import annotations

from typing import Any

from django.forms.renderers import DjangoTemplates
from django.utils.html import format_html
from django.utils.safestring import SafeString

_INPUT_TEMPLATES = frozenset(
    f"django/forms/widgets/{name}.html"
    for name in ("input", "text", "number", "hidden", "email", "url", "password", "search", "tel")
)
_TEXTAREA_TEMPLATE = "django/forms/widgets/textarea.html"


def _attributes(attrs: dict[str, Any]) -> SafeString:
    # As attrs.html: False leaves the attribute out, True writes its bare name, anything else name="value".
    return SafeString(
        "".join(
            format_html(" {}", name) if value is True else format_html(' {}="{}"', name, str(value))
            for name, value in attrs.items()
            if value is not False
        )
    )


def _input(widget: dict[str, Any]) -> SafeString:
    value = widget["value"]
    shown = "" if value is None else format_html(' value="{}"', str(value))
    return format_html(
        '<input type="{}" name="{}"{}{}>', widget["type"], widget["name"], shown, _attributes(widget["attrs"])
    )


def _textarea(widget: dict[str, Any]) -> SafeString:
    value = widget["value"]
    return format_html(
        '<textarea name="{}"{}>\n{}</textarea>', widget["name"], _attributes(widget["attrs"]), value or ""
    )


class PlainWidgetRenderer(DjangoTemplates):
    """Django's default form renderer, with the plain input and textarea widgets written in Python."""

    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        if template_name in _INPUT_TEMPLATES:
            return _input(context["widget"])
        if template_name == _TEXTAREA_TEMPLATE:
            return _textarea(context["widget"])
        return super().render(template_name, context, request=request)


# One instance, so its template engine (for every other widget) is built once.
plain_widget_renderer = PlainWidgetRenderer()
