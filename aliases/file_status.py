"""Whether each alias's file is here and would load: read from the ModelFile rows and active downloads (the
database, never the disk), in a fixed number of queries for a whole page of aliases.

Also the checks an alias's settings get from its file's GGUF header when the file is local (`alias_file_problems`),
called by the alias services before a save; the model's clean() stays free of I/O and queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Concat

from aliases.models import Alias
from aliases.validators import BUILTIN_CHAT_TEMPLATES, EMBEDDED_CHAT_TEMPLATE


class FileStatus:
    LOCAL = "local"
    MISSING = "missing"
    INCOMPLETE = "incomplete"
    DOWNLOADING = "downloading"
    CORRUPT = "corrupt"
    UNREADABLE = "unreadable"
    ALL = (LOCAL, MISSING, INCOMPLETE, DOWNLOADING, CORRUPT, UNREADABLE)


DESCRIPTIONS = {
    FileStatus.LOCAL: "The file is in the local cache and can load.",
    FileStatus.MISSING: "The file is not in the local cache: pull it before this alias can load.",
    FileStatus.INCOMPLETE: "Parts of this split model are missing or damaged: pull the missing parts.",
    FileStatus.DOWNLOADING: "The file is being downloaded.",
    FileStatus.CORRUPT: "The local copy is damaged: pull it again.",
    FileStatus.UNREADABLE: "The local file has no readable GGUF header.",
}


@dataclass
class AliasFile:
    """An alias's file as it stands: its status, the local row (if any) and the active download (if any)."""

    status: str
    modelfile: object | None = None  # modelfiles.models.ModelFile
    download: object | None = None  # modelfiles.models.Download
    missing_parts: list[str] = field(default_factory=list)
    # Files per host: where the alias would load (the hosts whose cache holds a loadable copy), sorted.
    hosts: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.status]

    @property
    def percent(self) -> float | None:
        return None if self.download is None else self.download.percent


def split_parts(filename: str) -> list[str]:
    """Every part of the split set a file name belongs to (itself alone when it is not split)."""
    from modelfiles.gguf_header import split_name

    split = split_name(filename)
    return [split.part(number) for number in range(1, split.count + 1)] if split else [filename]


def _matches(modelfile, snapshot: str) -> bool:
    return snapshot == modelfile.snapshot or snapshot in (modelfile.refs or ())


def alias_files(aliases: Iterable[Alias]) -> dict[int, AliasFile]:
    """{alias pk: AliasFile} for every alias given, in two queries whatever their number."""
    aliases = list(aliases)
    return {alias.pk: found for alias, found in zip(aliases, _alias_files(aliases), strict=True)}


def alias_file(alias: Alias) -> AliasFile:
    """One alias's file (saved or not: the form's values are checked before a save)."""
    return _alias_files([alias])[0]


def _alias_files(aliases: list[Alias]) -> list[AliasFile]:
    from modelfiles.cache import COMMIT_RE
    from modelfiles.gguf_header import split_name
    from modelfiles.models import Download, ModelFile

    if not aliases:
        return []
    repos = {alias.repo for alias in aliases}
    # Every part of a split set, not just the one the alias names: an incomplete set lists what it lacks.
    names = {part for alias in aliases for part in split_parts(alias.filename)}
    rows: dict[tuple[str, str], list] = {}
    files = ModelFile.objects.filter(present=True, repo__in=repos, filename__in=names).select_related("location")
    for modelfile in files.order_by("pk"):
        rows.setdefault((modelfile.repo, modelfile.filename), []).append(modelfile)
    downloads: dict[tuple[str, str], list] = {}
    for download in Download.objects.filter(status__in=Download.ACTIVE, repo__in=repos).order_by("created_at", "pk"):
        downloads.setdefault((download.repo, download.filename), []).append(download)
    # A download pinned to a commit (a re-pull of a damaged copy) is the one of the aliases that follow a ref to
    # that commit: the refs come from the file's row, gone from the cache or not.
    pinned = {
        (d.repo, d.filename, d.revision) for ds in downloads.values() for d in ds if COMMIT_RE.fullmatch(d.revision)
    }
    refs_at: dict[tuple[str, str, str], list] = {}
    if pinned:
        for repo, filename, snapshot, refs in ModelFile.objects.filter(
            repo__in={key[0] for key in pinned},
            filename__in={key[1] for key in pinned},
            snapshot__in={key[2] for key in pinned},
        ).values_list("repo", "filename", "snapshot", "refs"):
            refs_at.setdefault((repo, filename, snapshot), []).extend(refs or ())

    def active(repo: str, filename: str, snapshot: str):
        return next(
            (
                d
                for d in downloads.get((repo, filename), ())
                if snapshot in (d.revision, d.commit) or snapshot in refs_at.get((repo, filename, d.revision), ())
            ),
            None,
        )

    result: list[AliasFile] = []
    for alias in aliases:
        found = [row for row in rows.get((alias.repo, alias.filename), ()) if _matches(row, alias.snapshot)]
        # The best copy wins: one that loads, then one that is nearly there.
        order = {ModelFile.State.OK: 0, ModelFile.State.INCOMPLETE: 1, ModelFile.State.CORRUPT: 2}
        found.sort(key=lambda row: order.get(row.state, 3))
        modelfile = found[0] if found else None
        # Local if any host has it; each host whose copy loads is named (a row no scan claimed yet: "unknown").
        hosts = sorted(
            {row.location.label if row.location_id else "unknown" for row in found if row.state == ModelFile.State.OK}
        )
        download = active(alias.repo, alias.filename, alias.snapshot)
        if modelfile is None:
            status = FileStatus.DOWNLOADING if download else FileStatus.MISSING
            result.append(AliasFile(status=status, download=download))
            continue
        if modelfile.state == ModelFile.State.OK:
            result.append(AliasFile(status=FileStatus.LOCAL, modelfile=modelfile, hosts=hosts))
            continue
        missing: list[str] = []
        split = split_name(alias.filename)
        if modelfile.state == ModelFile.State.INCOMPLETE and split is not None:
            for number in range(1, split.count + 1):
                part = split.part(number)
                here = [
                    row
                    for row in rows.get((alias.repo, part), ())
                    # the parts in the same snapshot of the same cache (files per host)
                    if row.snapshot == modelfile.snapshot and row.location_id == modelfile.location_id
                ]
                if not here or here[0].state not in (ModelFile.State.OK, ModelFile.State.INCOMPLETE):
                    missing.append(part)
            download = download or next(
                (d for part in missing if (d := active(alias.repo, part, alias.snapshot)) is not None), None
            )
        status = {
            ModelFile.State.INCOMPLETE: FileStatus.INCOMPLETE,
            ModelFile.State.CORRUPT: FileStatus.CORRUPT,
        }.get(modelfile.state, FileStatus.UNREADABLE)
        if download is not None:
            status = FileStatus.DOWNLOADING
        result.append(AliasFile(status=status, modelfile=modelfile, download=download, missing_parts=missing))
    return result


def alias_not_available(queryset: QuerySet[Alias]) -> QuerySet[Alias]:
    """The aliases whose file is not local and loadable (missing, incomplete, downloading, corrupt, unreadable).

    A file matches by commit or by a ref of its snapshot; refs are a JSON list, compared as text (`"main"` inside
    `["main", "v1"]`), which both SQLite and PostgreSQL can do in one query.
    """
    from modelfiles.models import ModelFile

    quoted = Concat(Value('"'), OuterRef("snapshot"), Value('"'), output_field=TextField())
    loadable = ModelFile.objects.filter(
        present=True, state=ModelFile.State.OK, repo=OuterRef("repo"), filename=OuterRef("filename")
    ).annotate(refs_text=Cast("refs", TextField()))
    loadable = loadable.filter(Q(snapshot=OuterRef("snapshot")) | Q(refs_text__contains=quoted))
    return queryset.filter(~Exists(loadable))


def alias_file_problems(alias: Alias, *, found: AliasFile | None = None) -> dict[str, str]:
    """Field errors from the header of the alias's file when it is local: {field: what the model supports}.

    `found`: the alias's file when the caller looked many up at once (alias_files), as an import does.
    """
    found = found if found is not None else alias_file(alias)
    modelfile = found.modelfile
    if modelfile is None or not modelfile.gguf_read_key or modelfile.state == "unreadable":
        return {}
    errors: dict[str, str] = {}
    limit = modelfile.gguf_context_length
    if alias.n_ctx and limit and alias.n_ctx > limit:
        errors["n_ctx"] = (
            f"{modelfile.filename} supports a context of at most {limit:,} tokens (its context_length); "
            f"got {alias.n_ctx:,}. Use {limit:,} or less, or 0 for the model's own."
        )
    if alias.chat_template == EMBEDDED_CHAT_TEMPLATE and not modelfile.gguf_chat_template:
        errors["chat_template"] = (
            f"{modelfile.filename} has no embedded chat template. Choose a built-in one "
            f"({', '.join(BUILTIN_CHAT_TEMPLATES)}) or an owner/repo whose tokenizer_config holds one."
        )
    return errors
