from __future__ import annotations

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from config.accounts.roles import ADMIN, ROLES, VIEWER

ACTIVE_CHOICES = [("yes", "Active"), ("no", "Deactivated")]


class UserFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Search", method="search")
    # Labels spelled out: the fields are no model fields, and django-filter would label them "[invalid name]".
    role = django_filters.ChoiceFilter(
        label="Role",
        choices=[(role, role.capitalize()) for role in ROLES],
        method="filter_role",
        empty_label="Any role",
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    active = django_filters.ChoiceFilter(
        label="Status",
        choices=ACTIVE_CHOICES,
        method="filter_active",
        empty_label="Active or not",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    class Meta:
        model = get_user_model()
        fields = ("q", "role", "active")

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(username__icontains=value) | Q(email__icontains=value))

    def filter_role(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # The same reading as roles.role_of(): superusers are admins, otherwise the highest role group.
        if value == ADMIN:
            return queryset.filter(Q(is_superuser=True) | Q(groups__name=ADMIN)).distinct()
        higher = [role for role in ROLES[ROLES.index(value) + 1 :]]
        queryset = queryset.filter(is_superuser=False).exclude(groups__name__in=higher)
        if value == VIEWER:
            return queryset
        return queryset.filter(groups__name=value).distinct()

    def filter_active(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(is_active=value == "yes")

    @property
    def is_filtering(self) -> bool:
        return any(str(self.data.get(name, "")).strip() for name in self.filters)
