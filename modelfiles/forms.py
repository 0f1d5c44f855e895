"""The pull form. Its rules are the service's (`pull_validate`); the form only shapes the input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Layout
from django import forms

from aliases.validators import FILENAME_MAX, REPO_MAX, SNAPSHOT_MAX
from config.formatting import MB
from modelfiles.cleanup import KINDS
from modelfiles.models import Download
from modelfiles.selectors import location_hosts

DEFAULT_REVISION = "main"


def speed_field(label: str, help_text: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        min_value=Decimal("0.01"),
        max_value=Decimal("900000"),
        decimal_places=2,
        help_text=help_text,
        widget=forms.NumberInput(
            attrs={"step": "any", "min": "0.01", "placeholder": "no limit", "inputmode": "decimal"}
        ),
    )


def speed_bytes(value: Decimal | None) -> int | None:
    """A typed MB/s as bytes per second (None: no limit)."""
    return None if value is None else int(value * MB)


def speed_mb(bytes_per_second: int | None) -> str:
    """Bytes per second as the MB/s a form field shows (empty: no limit)."""
    return "" if bytes_per_second is None else f"{bytes_per_second / MB:.2f}".rstrip("0").rstrip(".")


class PullForm(forms.Form):
    repo = forms.CharField(
        label="Repository",
        max_length=REPO_MAX,
        help_text="The Hugging Face repo id, owner/name (e.g. TheBloke/Llama-2-7B-GGUF).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "owner/name"}),
    )
    filename = forms.CharField(
        label="File",
        max_length=FILENAME_MAX,
        help_text="Path of the .gguf file inside the repo. “List GGUF files” shows the repo's files to pick from.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "model.Q4_K_M.gguf"}
        ),
    )
    revision = forms.CharField(
        label="Revision",
        max_length=SNAPSHOT_MAX,
        required=False,
        initial=DEFAULT_REVISION,
        help_text="A branch, tag or 40-hex commit; left empty, main.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    host = forms.ChoiceField(
        label="Host",
        required=False,
        choices=[],
        help_text="The worker host whose cache the file goes to; any worker when not chosen.",
    )

    priority = forms.TypedChoiceField(
        label="Priority",
        required=False,
        coerce=int,
        empty_value=Download.Priority.NORMAL,
        initial=Download.Priority.NORMAL,
        choices=[(value, label.capitalize()) for value, label in Download.Priority.choices],
        help_text="Queued downloads start highest priority first, then in the order set on the downloads page.",
    )
    max_speed = speed_field("Speed limit (MB/s)", "Its own bandwidth limit; empty: only the global one.")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Files per host: the worker hosts known now (each started worker lists its own).
        hosts = location_hosts()
        self.fields["host"].choices = [("", "Any worker"), *((host, host) for host in hosts)]
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True  # the page's <form> carries the token
        fields = [
            Div(Field("repo"), css_class="col-md-5"),
            Div(Field("filename"), css_class="col-md-5"),
            Div(Field("revision"), css_class="col-md-2"),
        ]
        if len(hosts) > 1:  # with one worker host there is nothing to choose
            fields = [
                Div(Field("repo"), css_class="col-md-4"),
                Div(Field("filename"), css_class="col-md-4"),
                Div(Field("revision"), css_class="col-md-2"),
                Div(Field("host"), css_class="col-md-2"),
            ]
        queue = [Div(Field("priority"), css_class="col-md-3"), Div(Field("max_speed"), css_class="col-md-3")]
        self.helper.layout = Layout(Div(*fields, css_class="row"), Div(*queue, css_class="row"))

    def clean_revision(self) -> str:
        return self.cleaned_data.get("revision") or DEFAULT_REVISION


class SpeedLimitForm(forms.Form):
    """A bandwidth limit typed on the downloads page: the global one, or one download's."""

    max_speed = speed_field("Speed limit (MB/s)", "Empty: no limit.")


class RepoFilesForm(forms.Form):
    """The query of the "List GGUF files" button: which repo, at which revision."""

    repo = forms.CharField(max_length=REPO_MAX, required=False)
    revision = forms.CharField(max_length=SNAPSHOT_MAX, required=False)

    def clean_revision(self) -> str:
        return self.cleaned_data.get("revision") or DEFAULT_REVISION


class ModelFileDeleteForm(forms.Form):
    """The confirmation of a delete: what to delete, and the user aliases the admin was shown (a newer one that
    loads the file asks again)."""

    all_revisions = forms.BooleanField(required=False)
    confirm = forms.BooleanField(error_messages={"required": "Press the delete button to confirm."})
    seen_alias = forms.CharField(required=False)  # one per alias; read with getlist in the view


class CleanupForm(forms.Form):
    """Which kinds of cleanup candidates to remove; `confirm` only on the POST that removes them."""

    kind = forms.MultipleChoiceField(
        choices=[],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one kind of leftover to remove."},
    )
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = list(KINDS.items())
