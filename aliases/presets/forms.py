"""The preset form: the alias form's parameter widgets, bounds and help texts, every field optional."""

from __future__ import annotations

from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Fieldset, Layout
from django import forms

from aliases.forms import NUMERIC_FIELDS, StopWordsField, apply_bounds, field_label
from aliases.models import CONTEXT_PARAMS, REQUEST_PARAMS
from aliases.presets.models import PRESET_PARAMS, Preset
from aliases.presets.services import PRESET_FIELDS


class PresetForm(forms.ModelForm):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    class Meta:
        model = Preset
        fields = PRESET_FIELDS
        field_classes = {"stop": StopWordsField}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.editing = self.instance.pk is not None
        if self.editing and not self.is_bound:
            self.fields["version"].initial = self.instance.version
        apply_bounds(self)
        for name in PRESET_PARAMS:
            self.fields[name].label = field_label(name)
            self.fields[name].required = False
        self.fields["stop"].help_text += " One per line, as in the alias form."
        self.fields["name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = self._layout()

    @staticmethod
    def _layout() -> Layout:
        def grid(fields: tuple[str, ...]) -> Div:
            return Div(
                *(
                    Div(Field(name), css_class="col-sm-6 col-lg-3" if name in NUMERIC_FIELDS else "col-md-6")
                    for name in fields
                ),
                css_class="row",
            )

        return Layout(
            Fieldset("Preset", grid(("name", "description")), css_class="form-section"),
            Fieldset(
                "Parameters (leave a field empty to keep an alias's own value)",
                Fieldset("Request parameters", grid(REQUEST_PARAMS), css_class="form-subsection"),
                Fieldset("Context parameters", grid(CONTEXT_PARAMS), css_class="form-subsection"),
                css_class="form-section",
            ),
            Field("version"),
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.editing and not cleaned.get("version") and "version" not in self.errors:
            raise forms.ValidationError("This form is missing the version it was opened at. Reload and edit again.")
        return cleaned

    def service_data(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in PRESET_FIELDS if name in self.cleaned_data}


def form_values(values: dict[str, Any]) -> dict[str, str]:
    """Parameter values as the alias form's inputs hold them (stop words one per line, escaped)."""
    stop_field = StopWordsField()
    shown: dict[str, str] = {}
    for name, value in values.items():
        shown[name] = stop_field.prepare_value(value) if name == "stop" else str(value)
    return shown
