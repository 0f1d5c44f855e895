from __future__ import annotations

from django.urls import path

from config.accounts import views

app_name = "accounts"

urlpatterns = [
    path("account/tokens/", views.TokenListView.as_view(), name="tokens"),
    path("account/tokens/<int:pk>/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("users/", views.UserListView.as_view(), name="users"),
    path("users/new/", views.UserCreateView.as_view(), name="user-create"),
    path("users/<int:pk>/", views.UserDetailView.as_view(), name="user-detail"),
    path("users/<int:pk>/role/", views.UserRoleView.as_view(), name="user-role"),
    path("users/<int:pk>/password/", views.UserPasswordView.as_view(), name="user-password"),
    path("users/<int:pk>/deactivate/", views.UserDeactivateView.as_view(), name="user-deactivate"),
    path("users/<int:pk>/reactivate/", views.UserReactivateView.as_view(), name="user-reactivate"),
    path("users/<int:pk>/revoke-tokens/", views.UserRevokeTokensView.as_view(), name="user-revoke-tokens"),
]
