"""The alias form: every bound and help text is read back from the model's validators, never restated."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst

from aliases.models import CONTEXT_PARAMS, EDITABLE_FIELDS, REQUEST_PARAMS, Alias
from aliases.selectors import model_choices
from aliases.validators import BUILTIN_CHAT_TEMPLATES, EMBEDDED_CHAT_TEMPLATE, Bounded
from config.widgets import plain_widget_renderer

# How the form, the detail page and the conflict report group the fields: (legend, ((sub-legend, fields), ...)).
SECTIONS: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("Basic information", (("", ("alias",)),)),
    ("Model selection", (("", ("repo", "filename", "snapshot")),)),
    ("Parameters", (("Request parameters", REQUEST_PARAMS), ("Context parameters", CONTEXT_PARAMS))),
    ("Chat template", (("", ("chat_template",)),)),
)
NUMERIC_FIELDS = tuple(
    name
    for name in (*REQUEST_PARAMS, *CONTEXT_PARAMS)
    if isinstance(Alias._meta.get_field(name), models.FloatField | models.IntegerField)
)
CHAT_TEMPLATE_OPTIONS = (EMBEDDED_CHAT_TEMPLATE, *BUILTIN_CHAT_TEMPLATES)
UNSET = "—"

# A stop word is often a newline or a tab, which a one-word-per-line textarea cannot hold as typed.
_STOP_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_STOP_UNESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_STOP_ESCAPE_RE = re.compile(r"\\([\\ntr])")
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")


def stop_word_escape(word: str) -> str:
    return "".join(_STOP_ESCAPES.get(char, char) for char in word)


def stop_word_unescape(text: str) -> str:
    return _STOP_ESCAPE_RE.sub(lambda match: _STOP_UNESCAPES[match[1]], text)


def bounds_of(field_name: str) -> Bounded:
    """The `Bounded` validator on a model field: the one place its numbers are written."""
    model_field = Alias._meta.get_field(field_name)
    return next(validator for validator in model_field.validators if isinstance(validator, Bounded))


def field_label(field_name: str) -> str:
    # Parameters keep the names llama.cpp and the API use (n_ctx, top_p); the rest read as words.
    if field_name in REQUEST_PARAMS or field_name in CONTEXT_PARAMS:
        return field_name
    return capfirst(str(Alias._meta.get_field(field_name).verbose_name))


def display_value(value: Any) -> str:
    """A value as a person reads it in a table: unset is a dash, stop words are shown escaped."""
    if value is None:
        return UNSET
    if isinstance(value, list | tuple):
        return ", ".join(stop_word_escape(str(item)) for item in value) if value else UNSET
    if value == "":
        return UNSET
    return str(value)


class StopWordsField(forms.Field):
    """One stop word per line; `\\n`, `\\t`, `\\r` and `\\\\` are understood and shown back the same way."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "font-monospace"})

    def __init__(self, *, encoder: Any = None, decoder: Any = None, **kwargs: Any):
        # The model's JSONField offers its JSON encoder/decoder and, for its callable default, a hidden copy of
        # the initial value; the list is built here and needs neither.
        kwargs["show_hidden_initial"] = False
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        if value in (None, ""):
            return []
        if isinstance(value, list):
            return value
        # Whitespace is kept (a single space is a valid stop word); only empty lines are dropped.
        return [stop_word_unescape(line) for line in _LINE_BREAK_RE.split(str(value)) if line != ""]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(stop_word_escape(str(word)) for word in value)
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial) != self.to_python(data)


class DatalistTextInput(forms.TextInput):
    """A text input with suggestions: works as a plain text box without JavaScript or datalist support."""

    def __init__(self, options: Iterable[str], datalist_id: str, attrs: dict | None = None):
        super().__init__(attrs={**(attrs or {}), "list": datalist_id, "autocomplete": "off"})
        self.options = tuple(options)
        self.datalist_id = datalist_id

    def render(self, name, value, attrs=None, renderer=None):
        options = format_html_join("", '<option value="{}"></option>', ((option,) for option in self.options))
        datalist = format_html('<datalist id="{}">{}</datalist>', self.datalist_id, options)
        return format_html("{}{}", super().render(name, value, attrs, renderer), datalist)


def apply_bounds(form: forms.BaseForm) -> None:
    """Give each numeric input its min/max/step and an "Allowed: ..." help text from the model's validator."""
    for name in NUMERIC_FIELDS:
        if name not in form.fields:
            continue
        bounded = bounds_of(name)
        model_field = Alias._meta.get_field(name)
        form_field = form.fields[name]
        form_field.widget.attrs.update(
            {
                "min": min((bounded.low, *bounded.specials)),
                "max": max((bounded.high, *bounded.specials)),
                "step": "any" if isinstance(model_field, models.FloatField) else "1",
            }
        )
        form_field.help_text = f"Allowed: {bounded.describe()}. {model_field.help_text}"


def chat_template_widget() -> DatalistTextInput:
    return DatalistTextInput(CHAT_TEMPLATE_OPTIONS, datalist_id="chat-template-options")


CHAT_TEMPLATE_HELP = (
    f"'{EMBEDDED_CHAT_TEMPLATE}' uses the template inside the GGUF file; or pick a built-in one "
    f"({', '.join(BUILTIN_CHAT_TEMPLATES)}), or type an owner/repo whose tokenizer_config holds the template."
)


class AliasForm(forms.ModelForm):
    """Create and edit. The model's validators run in `full_clean()`, so errors land next to their fields."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)
    default_renderer = plain_widget_renderer

    class Meta:
        model = Alias
        fields = EDITABLE_FIELDS
        field_classes = {"stop": StopWordsField}
        widgets = {"chat_template": chat_template_widget()}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.editing = self.instance.pk is not None
        if self.editing and not self.is_bound:
            self.fields["version"].initial = self.instance.version
        apply_bounds(self)
        for name in EDITABLE_FIELDS:
            self.fields[name].label = field_label(name)
        self.fields["chat_template"].help_text = CHAT_TEMPLATE_HELP
        self.fields["stop"].help_text = (
            f"{Alias._meta.get_field('stop').help_text} One per line; type \\n for a newline, \\t for a tab, "
            "\\\\ for a backslash."
        )
        self.fields["alias"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})
        self._suggest_local_files()

    def _suggest_local_files(self) -> None:
        """Repo, then filename, then snapshot suggested from the local cache; typing anything else still works.

        With htmx, changing the repo or filename fetches narrower suggestions (aliases:model-options).
        """
        repo = str(self["repo"].value() or "")
        filename = str(self["filename"].value() or "")
        choices = model_choices(repo=repo, filename=filename)
        refresh = {
            "hx-get": reverse("aliases:model-options"),
            "hx-trigger": "change",
            "hx-include": "[name=repo],[name=filename]",
            "hx-swap": "none",
        }
        for name, options, attrs in (
            ("repo", choices.repos, refresh),
            ("filename", choices.filenames, refresh),
            ("snapshot", choices.snapshots, {}),
        ):
            field = self.fields[name]
            field.widget = DatalistTextInput(
                options, datalist_id=f"{name}-options", attrs={**field.widget.attrs, **attrs}
            )

    def sections(self) -> list[dict[str, Any]]:
        """The fields grouped as SECTIONS says, for templates/aliases/partials/_alias_form_fields.html.

        The markup is crispy-forms' Bootstrap 5 field, written out once in a plain template: crispy's layout
        machinery was 70-85 % of the edit page's time for twenty fields. As crispy's field tag does, each widget
        gets its class name, `form-control` and, with errors, `is-invalid`."""
        for name in EDITABLE_FIELDS:
            widget = self.fields[name].widget
            classes = widget.attrs.get("class", "").split()
            wanted = [type(widget).__name__.lower(), "form-control", *(("is-invalid",) if self[name].errors else ())]
            widget.attrs["class"] = " ".join([*classes, *(css for css in wanted if css not in classes)])
        return [
            {
                "legend": legend,
                "groups": [
                    {
                        "legend": sub_legend,
                        "fields": [
                            (self[name], "col-sm-6 col-lg-3" if name in NUMERIC_FIELDS else "col-md-6")
                            for name in fields
                        ],
                    }
                    for sub_legend, fields in groups
                ],
            }
            for legend, groups in SECTIONS
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.editing and not cleaned.get("version") and "version" not in self.errors:
            # Without it a stale page could overwrite someone's change; refuse instead of guessing.
            raise ValidationError("This form is missing the version it was opened at. Reload the page and edit again.")
        return cleaned

    def service_data(self) -> dict[str, Any]:
        """What the services take: the editable fields only."""
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS if name in self.cleaned_data}

    def rebase(self, version: int) -> None:
        """Carry `version` in the hidden field so the next save knowingly replaces that version."""
        self.data = self.data.copy()
        self.data["version"] = str(version)
