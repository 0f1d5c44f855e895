"""What ModelDesk asks of the Hugging Face Hub, through huggingface_hub: file metadata, file lists, errors.

huggingface_hub supplies URLs, auth (HF_TOKEN), metadata parsing and its error types; this module turns those
into the few answers and the few kinds of failure that the downloader and the pull form need.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote

import httpx2
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

SHA256_RE = re.compile(r"[0-9a-f]{64}")
GIT_SHA1_RE = re.compile(r"[0-9a-f]{40}")
COMMIT_RE = GIT_SHA1_RE
METADATA_TIMEOUT = float(os.environ.get("MODELDESK_HUB_TIMEOUT", "15"))


def endpoint() -> str:
    """HF_ENDPOINT read now, not at import time, so a test or a mirror set later still applies."""
    return (os.environ.get("HF_ENDPOINT") or constants._HF_DEFAULT_ENDPOINT).rstrip("/")


def token() -> str | None:
    # huggingface_hub's own lookup: HF_TOKEN, then the token saved by `hf auth login`.
    from huggingface_hub import get_token

    return get_token()


class HubError(Exception):
    """A failure with a code for the row, a message that says what to do, and whether trying again can help."""

    def __init__(self, code: str, message: str, *, transient: bool):
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient


def _status(error: HfHubHTTPError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def classify(error: BaseException, *, repo: str, filename: str, revision: str) -> HubError:
    """Turn a huggingface_hub or network error into a HubError (gated first: it subclasses RepositoryNotFound)."""
    if isinstance(error, HubError):
        return error
    if isinstance(error, GatedRepoError):
        return HubError(
            "gated_repo",
            f"{repo} is gated: accept its licence on the Hub with your account, then set HF_TOKEN to a token of "
            "that account for ModelDesk (the web server checks pulls too, the workers fetch them) and retry.",
            transient=False,
        )
    if isinstance(error, RepositoryNotFoundError):
        return HubError(
            "repo_not_found",
            f"Repository {repo} was not found, or it is private. Check the name; for a private repo set HF_TOKEN "
            "to a token that can read it and retry.",
            transient=False,
        )
    if isinstance(error, RevisionNotFoundError):
        return HubError(
            "revision_not_found",
            f"Revision {revision!r} does not exist in {repo}. Use a branch, tag or commit that exists (e.g. main).",
            transient=False,
        )
    if isinstance(error, RemoteEntryNotFoundError):
        return HubError(
            "file_not_found",
            f"{filename} does not exist in {repo} at revision {revision!r}. Pick a file from the repo's list.",
            transient=False,
        )
    if isinstance(error, HfHubHTTPError):
        status = _status(error)
        if status is not None and (status >= 500 or status in (408, 429)):
            return HubError("hub_unavailable", f"The Hub answered {status}; will try again.", transient=True)
        if status in (401, 403):
            return HubError(
                "unauthorized",
                f"The Hub refused access ({status}). Set HF_TOKEN to a token that can read {repo} and retry.",
                transient=False,
            )
        return HubError("hub_error", f"The Hub answered {status}: {error}", transient=False)
    if isinstance(error, (httpx2.TransportError, OSError, TimeoutError)):
        return HubError("network_error", f"Could not reach the Hub ({type(error).__name__}); will try again.",
                        transient=True)  # fmt: skip
    return HubError("hub_error", f"Unexpected answer from the Hub: {error}", transient=False)


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    revision: str
    commit: str
    etag: str
    size: int | None
    url: str
    headers: dict[str, str]  # what the GET needs: auth only when the URL is still the Hub's own host

    @property
    def sha256(self) -> str | None:
        """The Hub sends the sha256 as the etag of LFS files (all GGUF files on the Hub)."""
        return self.etag if SHA256_RE.fullmatch(self.etag) else None

    @property
    def git_sha1(self) -> str | None:
        """Files kept in git (not LFS) have the git blob id of their content as the etag."""
        return self.etag if GIT_SHA1_RE.fullmatch(self.etag) else None


def file_metadata(repo: str, filename: str, revision: str, *, timeout: float | None = None) -> RemoteFile:
    """One HEAD to the Hub: the commit, etag (sha256 or git sha1), size and download URL of a file.

    `timeout` (seconds per connect/read; default MODELDESK_HUB_TIMEOUT) bounds the wait: there are no retries here.
    Raises HubError; hub_bad_commit / hub_bad_etag / hub_bad_size when the answer is not in the Hub's own form.
    """
    base = endpoint()
    url = hf_hub_url(repo, filename, revision=revision, endpoint=base)
    hf_token = token()
    wait = METADATA_TIMEOUT if timeout is None else timeout
    try:
        meta = get_hf_file_metadata(url, token=hf_token or False, timeout=wait, endpoint=base)
    except Exception as error:
        raise classify(error, repo=repo, filename=filename, revision=revision) from error
    _check_trusted(meta.commit_hash, meta.etag, meta.size)
    headers = build_hf_headers(token=hf_token or False)
    headers["Accept-Encoding"] = "identity"
    if _origin(meta.location) != _origin(url):
        # A signed CDN URL: the Hub's token must not travel to another origin.
        headers.pop("authorization", None)
    return RemoteFile(
        repo=repo,
        filename=filename,
        revision=revision,
        commit=meta.commit_hash,
        etag=meta.etag,
        size=meta.size,
        url=meta.location,
        headers=headers,
    )


def _untrusted(code: str, what: str) -> HubError:
    return HubError(
        code,
        f"{what} HF_ENDPOINT ({endpoint_shown()}) may be a broken or hostile mirror, or something on the way "
        "changed the answer; nothing was written. Check HF_ENDPOINT (use https) and retry.",
        transient=False,
    )


def _check_trusted(commit: str | None, etag: str | None, size: int | None) -> None:
    """The commit and etag become folder and file names in the cache: only the Hub's own forms are accepted.

    A commit is 40 lowercase hex; an etag (after huggingface_hub strips quotes and W/) is a git blob sha1 (40 hex)
    or a sha256 (64 hex). Anything else, `../../x` or `/abs/path` included, fails the download before any write.
    """
    if not commit:
        raise _untrusted("hub_bad_commit", "The Hub's answer has no X-Repo-Commit header.")
    if not COMMIT_RE.fullmatch(commit):
        raise _untrusted("hub_bad_commit", f"The Hub sent X-Repo-Commit {_shown(commit)}, not a 40-hex commit.")
    if not etag:
        raise _untrusted("hub_bad_etag", "The Hub's answer has no ETag header.")
    if not (GIT_SHA1_RE.fullmatch(etag) or SHA256_RE.fullmatch(etag)):
        raise _untrusted(
            "hub_bad_etag", f"The Hub sent ETag {_shown(etag)}, neither a git sha1 (40 hex) nor a sha256 (64 hex)."
        )
    if size is not None and size < 0:
        raise _untrusted("hub_bad_size", f"The Hub sent a negative file size ({size}).")


def endpoint_shown() -> str:
    # Scheme, host and port only: an endpoint URL may carry credentials, which a message must never show.
    try:
        scheme, host, port = _origin(endpoint())
    except Exception:
        return "unparsable"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _shown(value: str) -> str:
    # The value came from the network: quote it, escape control characters and keep the message short.
    text = ascii(value[:80])
    return text + "…" if len(value) > 80 else text


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx2.URL(url)
    return parsed.scheme, parsed.host, parsed.port


@dataclass(frozen=True)
class RepoFileInfo:
    path: str
    size: int | None
    sha256: str | None


def list_gguf_files(repo: str, revision: str = "main", *, timeout: float | None = None) -> list[RepoFileInfo]:
    """The GGUF files of a repo at a revision, with sizes, for the pull form. Raises HubError.

    With `timeout`, each request waits at most that long and nothing is retried (a person is waiting for the
    answer); an unreachable Hub is then a HubError naming HF_ENDPOINT.
    """
    try:
        if timeout is None:
            api = HfApi(endpoint=endpoint(), token=token() or False)
            entries = list(api.list_repo_tree(repo, revision=revision, recursive=True))
        else:
            entries = _repo_tree_once(repo, revision, timeout=timeout)
    except Exception as error:
        problem = classify(error, repo=repo, filename="", revision=revision)
        if problem.transient and timeout is not None:
            raise unreachable(problem, error, timeout=timeout) from error
        raise problem from error
    files = []
    for entry in entries:
        path = getattr(entry, "path", "")
        if not path.lower().endswith(".gguf") or not hasattr(entry, "size"):
            continue
        lfs = getattr(entry, "lfs", None)
        files.append(RepoFileInfo(path=path, size=entry.size, sha256=getattr(lfs, "sha256", None)))
    return sorted(files, key=lambda info: info.path)


def _repo_tree_once(repo: str, revision: str, *, timeout: float) -> list[RepoFile | RepoFolder]:
    """`HfApi.list_repo_tree(recursive=True)` without its retries (about 24 s against a Hub that is down)."""
    session = get_session()
    headers = build_hf_headers(token=token() or False)
    url: str | None = f"{endpoint()}/api/models/{repo}/tree/{quote(revision, safe='')}"
    params: dict[str, str] | None = {"recursive": "true"}
    entries: list[RepoFile | RepoFolder] = []
    while url is not None:
        response = session.get(url, params=params, headers=headers, timeout=timeout, follow_redirects=True)
        hf_raise_for_status(response)
        for item in response.json():
            entries.append(RepoFile(**item) if item.get("type") == "file" else RepoFolder(**item))
        url, params = response.links.get("next", {}).get("url"), None  # the next link carries the query
    return entries


def unreachable_reason(problem: HubError, cause: BaseException | None, *, timeout: float) -> str:
    """Why the Hub could not be asked, in a few words: no answer in time, no connection, or its 5xx/429."""
    if isinstance(cause, (TimeoutError, httpx2.TimeoutException)):
        return f"no answer within {timeout:g} s"
    if problem.code == "network_error" and cause is not None:
        return f"no connection: {type(cause).__name__}"
    return problem.message.removesuffix("; will try again.").removesuffix(".")


def unreachable(problem: HubError, cause: BaseException, *, timeout: float) -> HubError:
    """The Hub could not be asked in time (no answer, connection refused, 5xx/429): say so, naming HF_ENDPOINT."""
    return HubError(
        "hub_unreachable",
        f"Could not list the files: the Hub at HF_ENDPOINT ({endpoint_shown()}) gave no usable answer "
        f"({unreachable_reason(problem, cause, timeout=timeout)}). Check HF_ENDPOINT and the network. A file you "
        "name can still be pulled: it is queued, and the worker keeps asking the Hub until it answers.",
        transient=True,
    )
