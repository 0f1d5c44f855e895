from __future__ import annotations

from django import template

from config.wrapping import wrap_name as _wrap_name

register = template.Library()


@register.filter
def wrap_name(value: object):
    """`{{ alias.repo|wrap_name }}`: the name with line-break opportunities after its separators only."""
    return _wrap_name(value)
