"""Read queries shared by the alias pages and the API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.db.models.functions import Lower

from aliases.models import Alias, AliasChange
from aliases.search import SEARCH_FIELDS, alias_search

__all__ = [
    "SEARCH_FIELDS",
    "alias_deleted_list",
    "alias_get",
    "alias_list",
    "alias_search",
    "alias_versions",
    "model_choices",
]


def alias_list(*, search: str = "") -> QuerySet[Alias]:
    return alias_search(Alias.objects.all(), search)


def alias_get(*, name: str) -> Alias | None:
    return Alias.objects.by_name(name).first()


@dataclass(frozen=True)
class ModelChoices:
    """Suggestions for the alias form's model selection, from the files in the local cache."""

    repos: list[str]
    filenames: list[str]
    snapshots: list[str]


def model_choices(*, repo: str = "", filename: str = "", limit: int = 200) -> ModelChoices:
    """Repos with local files; that repo's files (or all); the snapshots and refs holding that file."""
    from modelfiles.models import ModelFile

    present = ModelFile.objects.filter(present=True)
    repos = list(present.order_by("repo").values_list("repo", flat=True).distinct()[:limit])
    if not repo:
        filenames = list(present.order_by("filename").values_list("filename", flat=True).distinct()[:limit])
        return ModelChoices(repos=repos, filenames=filenames, snapshots=[])
    # One repo's files (a few quantisations and snapshots, not a table's worth) in one query, in the order of
    # their names and then the model's order: the filenames and that file's snapshots are read from the same rows.
    filenames: list[str] = []
    snapshots: list[str] = []
    rows = present.filter(repo=repo).order_by("filename", "snapshot", "pk").values_list("filename", "snapshot", "refs")
    for name, snapshot, refs in rows:
        if not filenames or filenames[-1] != name:
            filenames.append(name)
        if filename and name == filename:
            snapshots.extend(ref for ref in refs if ref not in snapshots)
            snapshots.append(snapshot)
    return ModelChoices(repos=repos, filenames=filenames[:limit], snapshots=snapshots)


def alias_versions(*, alias: Alias) -> QuerySet[AliasChange]:
    """Every saved version of `alias` (its change records, each holding the whole alias), newest first."""
    return AliasChange.objects.filter(alias=alias).select_related("changed_by").order_by("-version", "-pk")


def alias_deleted_list() -> QuerySet[AliasChange]:
    """Deletions not undone (each record keeps the alias whole as it was), newest first."""
    return (
        AliasChange.objects.filter(action=AliasChange.Action.DELETE, alias__isnull=True)
        .select_related("changed_by")
        .order_by("-changed_at", "-pk")
    )


def alias_names_taken(*, names: list[str]) -> set[str]:
    """Which of `names` (lower-cased) some alias has now, in one query the case-insensitive unique index serves."""
    lowered = sorted({name.lower() for name in names})
    if not lowered:
        return set()
    return set(
        Alias.objects.annotate(name_lower=Lower("alias"))
        .filter(name_lower__in=lowered)
        .values_list("name_lower", flat=True)
    )
