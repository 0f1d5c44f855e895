from __future__ import annotations

from django.urls import path

from config import converters  # noqa: F401  registers `rowid`
from config.accounts import views

app_name = "accounts"

urlpatterns = [
    path("account/tokens/", views.TokenListView.as_view(), name="tokens"),
    path("account/tokens/<rowid:pk>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("users/", views.UserListView.as_view(), name="users"),
    path("users/new/", views.UserCreateView.as_view(), name="user-create"),
    path("users/<rowid:pk>/", views.UserDetailView.as_view(), name="user-detail"),
    path("users/<rowid:pk>/role/", views.UserRoleView.as_view(), name="user-role"),
    path("users/<rowid:pk>/password/", views.UserPasswordView.as_view(), name="user-password"),
    path("users/<rowid:pk>/deactivate/", views.UserDeactivateView.as_view(), name="user-deactivate"),
    path("users/<rowid:pk>/reactivate/", views.UserReactivateView.as_view(), name="user-reactivate"),
    path("users/<rowid:pk>/revoke-tokens/", views.UserRevokeTokensView.as_view(), name="user-revoke-tokens"),
]
