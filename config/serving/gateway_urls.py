from __future__ import annotations

from django.urls import path

from config.serving import gateway

app_name = "gateway"

# OpenAI's paths, under /v1/ (config/urls.py), without trailing slashes: clients append them to their base URL.
urlpatterns = [
    path("models", gateway.models, name="models"),
    path("chat/completions", gateway.chat_completions, name="chat-completions"),
    path("completions", gateway.completions, name="completions"),
]
