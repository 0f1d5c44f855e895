"""`manage.py check` lists rows stored before every value was checked whole (issue 7), so an admin can fix them.

Migration 0004 repaired what could be repaired without guessing (surrounding whitespace such as a trailing
newline, when what is left is valid and, for a name, free); what is left is reported here, never changed.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.core import checks
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from aliases.validators import COMMIT_RE, validate_filename, validate_repo, validate_snapshot

MAX_LISTED = 20


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def alias_problems() -> Iterator[tuple[str, str]]:
    from aliases.models import Alias

    for alias in Alias.objects.order_by("pk").iterator():
        try:
            alias.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            yield f"Alias id={alias.pk} {alias.alias!r}", _messages(exc)


def _field_problems(values: dict[str, str], validators: dict[str, object]) -> str:
    problems = []
    for field, validator in validators.items():
        try:
            validator(values[field])  # type: ignore[operator]
        except ValidationError as exc:
            problems.append(f"{field}: {' '.join(exc.messages)}")
    return "; ".join(problems)


def _validate_commit(value: str) -> None:
    if value and not COMMIT_RE.fullmatch(value):
        raise ValidationError("Not a 40-character lowercase commit hash.")


def _validate_refs(value: list) -> None:
    for ref in value or ():
        validate_snapshot(str(ref))


def modelfile_problems() -> Iterator[tuple[str, str]]:
    from modelfiles.models import ModelFile

    rules = {"repo": validate_repo, "filename": validate_filename, "snapshot": _validate_commit, "refs": _validate_refs}
    for row in ModelFile.objects.order_by("pk").values("pk", *rules):
        problems = _field_problems(row, rules)
        if problems:
            yield f"ModelFile id={row['pk']} {row['repo']!r} {row['filename']!r}", problems


def download_problems() -> Iterator[tuple[str, str]]:
    from modelfiles.models import Download

    rules = {
        "repo": validate_repo,
        "filename": validate_filename,
        "revision": validate_snapshot,
        "commit": _validate_commit,
    }
    for row in Download.objects.order_by("created_at", "pk").values("pk", *rules):
        problems = _field_problems(row, rules)
        if problems:
            yield f"Download id={row['pk']} {row['repo']!r} {row['filename']!r}", problems


def _warning(check_id: str, kind: str, problems: list[tuple[str, str]], hint: str) -> checks.Warning:
    listed = "\n".join(f"  {row}: {problem}" for row, problem in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return checks.Warning(
        f"{len(problems)} stored {kind} break the current rules:\n{listed}{more}", hint=hint, id=check_id
    )


@checks.register()
def stored_rows_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Warn about stored aliases, model files and downloads whose values the rules now refuse."""
    try:
        aliases = list(alias_problems())
        modelfiles = list(modelfile_problems())
        downloads = list(download_problems())
    except DatabaseError:
        return []  # no database yet (before `migrate`) or not reachable: nothing to report on
    found = []
    if aliases:
        found.append(
            _warning(
                "aliases.W001",
                "aliases",
                aliases,
                "Edit or delete them in the Django admin (/admin/aliases/alias/); names that cannot be part of a URL "
                "are listed without a link.",
            )
        )
    if modelfiles:
        found.append(
            _warning("aliases.W002", "model files", modelfiles, "Rescan the cache; the scanner skips such entries.")
        )
    if downloads:
        found.append(
            _warning("aliases.W003", "downloads", downloads, "They cannot be retried; delete them in the Django admin.")
        )
    return found
