"""Django admin for aliases. Saves and deletes go through aliases.services, so they are checked and recorded."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from aliases.forms import SECTIONS, StopWordsField, apply_bounds, chat_template_widget
from aliases.models import EDITABLE_FIELDS, Alias, AliasChange
from aliases.services import alias_create, alias_delete, alias_update

BOOKKEEPING_FIELDS = ("source", "version", "created_at", "created_by", "updated_at", "updated_by")


class AliasAdminForm(forms.ModelForm):
    # The version the admin page was opened at; a save against a newer version is refused, never merged.
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Alias
        fields = EDITABLE_FIELDS
        field_classes = {"stop": StopWordsField}
        widgets = {"chat_template": chat_template_widget()}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and not self.is_bound:
            self.fields["expected_version"].initial = self.instance.version
        apply_bounds(self)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance.pk is not None:
            expected = cleaned.get("expected_version")
            if expected is None:
                raise ValidationError("The form lost the version it was opened at. Reload the page and edit again.")
            if expected != self.instance.version:
                raise ValidationError(
                    "This alias was changed by someone else since you opened it (you opened version "
                    "%(expected)s, it is now version %(current)s). Nothing was saved; reload the page to see "
                    "their changes.",
                    code="version_conflict",
                    params={"expected": expected, "current": self.instance.version},
                )
        return cleaned


def _fieldsets() -> list[tuple[str, dict]]:
    fieldsets: list[tuple[str, dict]] = []
    for legend, groups in SECTIONS:
        for sub_legend, fields in groups:
            fieldsets.append((sub_legend or legend, {"fields": fields}))
    fieldsets[0][1]["fields"] = (*fieldsets[0][1]["fields"], "expected_version")
    fieldsets.append(("Bookkeeping", {"fields": BOOKKEEPING_FIELDS, "classes": ("collapse",)}))
    return fieldsets


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    form = AliasAdminForm
    fieldsets = _fieldsets()
    readonly_fields = BOOKKEEPING_FIELDS
    list_display = (
        "alias",
        "source",
        "repo",
        "filename",
        "short_snapshot",
        "chat_template",
        "version",
        "updated_at",
        "updated_by",
    )
    list_filter = ("source", "chat_template")
    search_fields = ("alias", "repo", "filename")
    list_select_related = ("updated_by",)
    list_per_page = 50

    def has_change_permission(self, request: HttpRequest, obj: Alias | None = None) -> bool:
        # Aliases generated from local files are read-only everywhere; the admin shows them for viewing.
        if obj is not None and obj.is_read_only:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Alias | None = None) -> bool:
        if obj is not None and obj.is_read_only:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Alias, form: AliasAdminForm, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        if change:
            saved = alias_update(
                alias=obj, data=data, expected_version=form.cleaned_data["expected_version"], by=request.user
            )
        else:
            saved = alias_create(data=data, by=request.user)
        # The admin goes on to log and redirect with `obj`; give it what the service stored.
        for field in Alias._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Alias) -> None:
        alias_delete(alias=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Alias]) -> None:
        skipped = []
        for alias in queryset:
            if alias.is_read_only:
                skipped.append(alias.alias)
                continue
            alias_delete(alias=alias, by=request.user)
        if skipped:
            messages.warning(request, f"Read-only aliases were not deleted: {', '.join(skipped)}.")


@admin.register(AliasChange)
class AliasChangeAdmin(admin.ModelAdmin):
    """The change record is written by the services only; here it is read."""

    list_display = ("alias_name", "action", "version", "changed_by", "changed_at")
    list_filter = ("action", "changed_at")
    search_fields = ("alias_name", "changed_by__username")
    list_select_related = ("changed_by",)
    readonly_fields = ("alias", "alias_name", "action", "version", "changes", "snapshot", "changed_by", "changed_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AliasChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AliasChange | None = None) -> bool:
        return False
