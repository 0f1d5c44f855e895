from __future__ import annotations

from django import template

from aliases.file_status import AliasFile
from aliases.models import Alias
from config.serving.exports import alias_exports
from config.serving.services import preset_path

register = template.Library()


@register.inclusion_tag("serving/partials/_run_elsewhere.html")
def run_elsewhere(alias: Alias, found: AliasFile | None = None) -> dict:
    """The alias page's "Run elsewhere" section: each export, or why it cannot be made. `found`: the alias's file
    as the page read it already (else it is read here)."""
    path = preset_path()
    exports = alias_exports(alias, template_dir=path.parent if path else None, found=found)
    return {"alias": alias, "exports": exports}


@register.inclusion_tag("serving/partials/_on_the_server.html", takes_context=True)
def on_the_server(context, alias: Alias) -> dict:
    """The alias page's "On the server" panel: its state on the configured router, and load/unload buttons for
    those who may. Nothing at all when no router is configured."""
    from config.serving.runtime import router_status
    from config.serving.services import may_serve

    request = context["request"]
    status = router_status()
    return {
        "alias": alias,
        "router": status,
        "model": status.for_alias(alias.alias) if status is not None else None,
        "may_serve": may_serve(request.user),
        "next": request.get_full_path(),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("serving/partials/_router_buttons.html", takes_context=True)
def router_buttons(context, name: str, model, next_url: str = "") -> dict:
    """Load / Unload as POST forms for the alias `name`, as its state allows."""
    return {"name": name, "model": model, "next": next_url, "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("serving/partials/_gateway_usage.html")
def served_through_gateway(alias: Alias) -> dict:
    """The alias page's "Served through the gateway" panel: requests and tokens in and out, and the top users."""
    from config.serving.selectors import alias_usage

    return {"alias": alias, "usage": alias_usage(name=alias.alias)}
