from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Lower

from aliases.validators import (
    EMBEDDED_CHAT_TEMPLATE,
    FILENAME_MAX,
    MODEL_ALIAS_NAME_MAX,
    REPO_MAX,
    SNAPSHOT_MAX,
    USER_MAX,
    Bounded,
    model_alias_name_ok,
    validate_alias_name,
    validate_chat_template,
    validate_filename,
    validate_no_control_characters,
    validate_repo,
    validate_snapshot,
    validate_stop,
)

TOKENS = 1_048_576
INT64 = 2**63

REQUEST_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "user",
)
CONTEXT_PARAMS = ("n_seed", "n_threads", "n_ctx", "n_parallel", "n_predict", "n_keep")
BASIC_FIELDS = ("alias", "repo", "filename", "snapshot", "chat_template")
# Everything a person or a script sets; `source`, `version` and the bookkeeping fields are the system's.
EDITABLE_FIELDS = (*BASIC_FIELDS, *REQUEST_PARAMS, *CONTEXT_PARAMS)
# The columns lists sort by (the name has its own index on Lower(alias)); each has a (column, id) index.
SORTED_COLUMNS = ("repo", "filename", "snapshot", "source", "chat_template", "user",
                  *(name for name in (*REQUEST_PARAMS, *CONTEXT_PARAMS) if name not in ("stop", "user")),
                  "version", "created_at", "updated_at")  # fmt: skip


class AliasQuerySet(models.QuerySet):
    def by_name(self, name: str) -> AliasQuerySet:
        # LOWER(alias) = LOWER(name), the expression of the case-insensitive unique index, so the index serves it;
        # `alias__iexact` compiles to UPPER() (PostgreSQL) or LIKE (SQLite), which scan every alias.
        return self.alias(name_lower=Lower("alias")).filter(name_lower=Lower(Value(name)))

    def without_search_index(self) -> AliasQuerySet | None:
        """These rows without the search's trigram-index narrowing (config/paging.py finds a page of many matches
        sooner that way); None when no search narrows them."""
        from aliases.search import alias_search_unnarrowed

        return alias_search_unnarrowed(self)


class Alias(models.Model):
    class Source(models.TextChoices):
        USER = "user", "user"
        MODEL = "model", "model (from a local file)"

    # The name rule depends on the source (see clean()); the length here fits both kinds.
    alias = models.CharField(
        max_length=MODEL_ALIAS_NAME_MAX,
        help_text="The name clients ask for, e.g. llama3:instruct. Unique regardless of case.",
    )
    repo = models.CharField(
        max_length=REPO_MAX,
        validators=[validate_repo],
        help_text="Hugging Face repo id, owner/name.",
    )
    filename = models.CharField(
        max_length=FILENAME_MAX,
        validators=[validate_filename],
        help_text="Path of the GGUF file inside the repo.",
    )
    snapshot = models.CharField(
        max_length=SNAPSHOT_MAX,
        default="main",
        validators=[validate_snapshot],
        help_text="A 40-character commit hash, or a branch/tag such as main.",
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.USER, editable=False)
    chat_template = models.CharField(
        max_length=REPO_MAX,
        default=EMBEDDED_CHAT_TEMPLATE,
        validators=[validate_chat_template],
        help_text="'embedded' uses the template inside the GGUF file.",
    )

    # Request parameters: defaults sent with each chat request; null means not set.
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[Bounded(0, 2)],
        help_text="Sampling temperature; higher is more random.",
    )
    top_p = models.FloatField(
        null=True,
        blank=True,
        validators=[Bounded(0, 1)],
        help_text="Nucleus sampling: only tokens within this cumulative probability are considered.",
    )
    max_tokens = models.IntegerField(
        null=True,
        blank=True,
        validators=[Bounded(1, TOKENS)],
        help_text="Most tokens to generate for one answer; at most n_ctx when n_ctx is set.",
    )
    frequency_penalty = models.FloatField(
        null=True,
        blank=True,
        validators=[Bounded(-2, 2)],
        help_text="Positive values discourage repeating the same tokens often.",
    )
    presence_penalty = models.FloatField(
        null=True,
        blank=True,
        validators=[Bounded(-2, 2)],
        help_text="Positive values encourage new topics.",
    )
    seed = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[Bounded(-INT64, INT64 - 1)],
        help_text="Fixed random seed for repeatable answers (64-bit signed integer).",
    )
    stop = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_stop],
        help_text="Up to 4 different strings; generation stops when one appears.",
    )
    user = models.CharField(
        max_length=USER_MAX,
        blank=True,
        validators=[validate_no_control_characters],
        help_text="End-user identifier passed along with requests.",
    )

    # Context parameters: how the server loads the model; null means the server's default.
    n_seed = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[Bounded(0, 2**32 - 1)],
        help_text="Seed used when the server loads the model.",
    )
    n_threads = models.IntegerField(
        null=True,
        blank=True,
        validators=[Bounded(1, 1024)],
        help_text="CPU threads used for generation.",
    )
    n_ctx = models.IntegerField(
        null=True,
        blank=True,
        validators=[Bounded(128, TOKENS, specials=(0,))],
        help_text="Context window in tokens; 0 uses the model's own.",
    )
    n_parallel = models.IntegerField(
        null=True,
        blank=True,
        validators=[Bounded(1, 256)],
        help_text="Requests served at the same time (slots).",
    )
    n_predict = models.IntegerField(
        null=True,
        blank=True,
        validators=[Bounded(1, TOKENS, specials=(-2, -1))],
        help_text="Tokens to predict: -1 unbounded, -2 until the context is full.",
    )
    n_keep = models.IntegerField(
        null=True,
        blank=True,
        validators=[Bounded(0, TOKENS, specials=(-1,))],
        help_text="Prompt tokens kept when the context shifts: -1 keeps all.",
    )

    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    objects = AliasQuerySet.as_manager()

    class Meta:
        ordering = [Lower("alias"), "pk"]
        verbose_name_plural = "aliases"
        constraints = [
            models.UniqueConstraint(
                Lower("alias"),
                name="alias_name_unique_ci",
                violation_error_message="An alias with this name already exists (names ignore case).",
            ),
            models.CheckConstraint(condition=Q(source__in=["user", "model"]), name="alias_source_valid"),
            models.CheckConstraint(condition=Q(version__gte=1), name="alias_version_positive"),
        ]
        indexes = [
            models.Index(fields=["repo", "filename"], name="alias_repo_filename"),
            # Every sort of the list page and the API, with the primary key that breaks ties: a page is read off
            # the index in order (either way) instead of sorting every alias. Descending NULLS LAST on PostgreSQL
            # needs indexes of its own: migration 0007.
            models.Index(Lower("alias"), F("id"), name="alias_sort_alias"),
            *(models.Index(fields=[name, "id"], name=f"alias_sort_{name}") for name in SORTED_COLUMNS),
        ]

    def __str__(self) -> str:
        return self.alias

    @property
    def is_read_only(self) -> bool:
        return self.source == self.Source.MODEL

    @property
    def short_snapshot(self) -> str:
        return self.snapshot[:8] if len(self.snapshot) == 40 else self.snapshot

    def clean(self) -> None:
        super().clean()
        errors: dict[str, ValidationError | str] = {}
        if self.source == self.Source.MODEL:
            if not model_alias_name_ok(self.alias or ""):
                errors["alias"] = "Aliases made from model files are named owner/repo:quant."
        else:
            try:
                validate_alias_name(self.alias or "")
            except ValidationError as exc:
                errors["alias"] = exc
        n_ctx = self.n_ctx
        if n_ctx:  # 0 and null mean "the model's default": no limit to compare against
            for field in ("n_keep", "max_tokens", "n_predict"):
                value = getattr(self, field)
                if isinstance(value, int) and value > n_ctx:
                    errors[field] = f"Must not exceed n_ctx ({n_ctx:,}) (got {value:,})."
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude=None) -> None:
        # The case-insensitive unique constraint would report a form-wide error; name the field instead.
        if not exclude or "alias" not in exclude:
            clash = Alias.objects.by_name(self.alias).exclude(pk=self.pk).first()
            if clash is not None:
                raise ValidationError(
                    {
                        "alias": ValidationError(
                            "An alias named %(existing)s already exists (names ignore case).",
                            code="unique",
                            params={"existing": clash.alias},
                        )
                    }
                )
        super().validate_constraints(exclude=exclude)

    def values(self) -> dict:
        """The editable fields as plain data (used for change records and conflict reports)."""
        return {name: getattr(self, name) for name in EDITABLE_FIELDS}


class AliasChange(models.Model):
    """One recorded change to an alias: who, when, and each field's old and new value."""

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        REVERT = "revert"
        RESTORE = "restore"

    alias = models.ForeignKey(Alias, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    alias_name = models.CharField(max_length=MODEL_ALIAS_NAME_MAX)
    action = models.CharField(max_length=8, choices=Action.choices)
    version = models.PositiveIntegerField(help_text="The alias's version after this change.")
    changes = models.JSONField(default=dict, help_text="{field: [old, new]}")
    snapshot = models.JSONField(default=dict, help_text="Every editable field after this change.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [
            models.Index(fields=["alias", "version"], name="aliaschange_alias_version"),
            # Deleted aliases are found by name, ignoring case, once their rows (and keys) are gone.
            models.Index(Lower("alias_name"), name="aliaschange_name_lower"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.alias_name} v{self.version}"
