from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
site = get_asgi_application()

# After Django is set up: the gateway's handler reads the URLconf and settings.
from config.serving.gateway_asgi import GatewayHandler, gateway_dispatcher  # noqa: E402

# /v1/ (the OpenAI-compatible gateway) goes through a handler without the site's middleware (gateway_asgi.py);
# every other path through Django's own.
application = gateway_dispatcher(site, GatewayHandler())
