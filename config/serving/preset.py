"""The llama-server router preset (an INI file) rendered from the aliases whose file is local.

One section per servable alias, named by its router id (config/serving/router.py), holding the model path (the
snapshot path in this host's Hugging Face cache; the first part of a split set, from which llama.cpp finds the
rest) and the options the alias sets, as llama-server's long option names without dashes. An alias that cannot be
served is left out whole, with its reason in a comment at the end (and on the serving page).

The INI reader of llama-server (common/preset.cpp) has no quoting: a value ends at `;`, `#` or a line break and
loses surrounding blanks; a section name ends at `]`. So every value and name we write is checked against what
that reader keeps, and an alias whose value it would cut (a path with `#`, a hostile name with a newline) is not
served rather than written half or allowed to add keys. Comments escape whatever they quote.

Chat templates: the built-in names llama.cpp knows are written as `chat-template`; ours that it does not know
(tinyllama) and an `owner/repo` template (the `chat_template` of that repo's cached tokenizer_config.json) are
written to a file beside the preset and named with `chat-template-file`; `embedded` writes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aliases.file_status import AliasFile, FileStatus, alias_files, split_parts
from aliases.models import Alias
from aliases.validators import EMBEDDED_CHAT_TEMPLATE, REPO_PART_RE
from config.serving.router import RESERVED_SECTIONS, router_id
from modelfiles import cache

# (our field, llama-server's option) in the order they are written.
OPTION_FIELDS = (
    ("n_ctx", "ctx-size"),
    ("n_threads", "threads"),
    ("n_parallel", "parallel"),
    ("n_predict", "n-predict"),
    ("n_keep", "keep"),
    ("n_seed", "seed"),
    ("temperature", "temp"),
    ("top_p", "top-p"),
    ("presence_penalty", "presence-penalty"),
    ("frequency_penalty", "frequency-penalty"),
)
# llama-server's --seed takes -1 (random) or an unsigned 32-bit number.
SEED_RANGE = range(-1, 2**32)

# Our template ids as llama.cpp's built-in names (src/llama-chat.cpp, LLM_CHAT_TEMPLATES).
BUILTIN_TEMPLATE_NAMES = {
    "llama3": "llama3",
    "llama2": "llama2",
    "phi3": "phi3",
    "gemma": "gemma",
    "deepseek": "deepseek",
    "command-r": "command-r",
    "openchat": "openchat",
    "chatml": "chatml",
}
# Ours that llama.cpp has no name for: the template text itself, written to a file. (llama.cpp's `zephyr` ends
# turns with <|endoftext|>; TinyLlama's chat models end them with their eos token, </s>.)
TEMPLATE_TEXTS = {
    "tinyllama": (
        "{% for message in messages %}"
        "{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token + '\n' }}"
        "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token + '\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    ),
}
TOKENIZER_CONFIG = "tokenizer_config.json"
TEMPLATE_MAX_BYTES = 1_000_000

# What the router's INI reader keeps of a section name and a value (see the module's docstring).
SECTION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
_VALUE_BREAKERS = re.compile(r"[;#\[\]\x00-\x1f\x7f\u0085\u2028\u2029]")


class Unservable(Exception):
    """Why an alias cannot be in the preset."""


@dataclass(frozen=True)
class ServedAlias:
    alias: str
    router_id: str
    model_path: str
    # (option, value as written) in OPTION_FIELDS order, then the chat template's option.
    options: tuple[tuple[str, str], ...]
    # The file the chat template is written to (a name inside the template folder), or empty.
    template_file: str = ""


@dataclass(frozen=True)
class UnservedAlias:
    alias: str
    reason: str


@dataclass
class Preset:
    served: list[ServedAlias] = field(default_factory=list)
    unserved: list[UnservedAlias] = field(default_factory=list)
    # {file name inside the template folder: template text}
    template_files: dict[str, str] = field(default_factory=dict)
    text: str = ""


def comment_text(text: str) -> str:
    """`text` safe inside a `;` comment: one line, printable ASCII (JSON's escapes for the rest)."""
    return json.dumps(text)[1:-1]


def value_problem(value: str) -> str | None:
    if value != value.strip() or not value:
        return "it would lose its leading or trailing blanks"
    found = _VALUE_BREAKERS.search(value)
    if found:
        return f"it holds {comment_text(found.group())!r}, which the preset file cannot hold in a value"
    return None


def _number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unservable(f"a parameter holds {comment_text(repr(value))}, which is not a number")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unservable("a parameter is not a finite number")
        return repr(value)
    return str(value)


def alias_options(alias: Alias) -> list[tuple[str, str]]:
    """The llama-server options of the parameters `alias` sets (unset ones are left to the server's default)."""
    options = []
    for name, option in OPTION_FIELDS:
        value = getattr(alias, name)
        if value is None:
            continue
        if option == "seed" and value not in SEED_RANGE:
            raise Unservable(f"n_seed {value} is outside llama-server's range (-1 to {2**32 - 1})")
        options.append((option, _number(value)))
    return options


def model_path(alias: Alias, found: AliasFile) -> Path:
    """The file llama-server opens: this host's snapshot path of the alias's file (a split set's first part)."""
    if found.status != FileStatus.LOCAL or found.modelfile is None:
        raise Unservable(found.description.rstrip("."))
    paths = cache.RepoPaths.for_repo(alias.repo)
    path = paths.snapshot_file(found.modelfile.snapshot, split_parts(alias.filename)[0])
    try:
        paths.check_root()
        cache.contained(path, paths.root / "snapshots", within=paths.root, follow=False)
    except cache.UnsafePath as exc:
        raise Unservable(f"its file path is not inside the cache ({comment_text(str(exc))})") from exc
    if not path.exists():
        raise Unservable(f"the file is not in this host's cache ({comment_text(str(path))})")
    problem = value_problem(str(path))
    if problem:
        raise Unservable(f"its file path cannot be written in the preset: {problem}")
    return path


def _repo_template(repo: str) -> str:
    owner, _, name = repo.partition("/")
    if not (REPO_PART_RE.fullmatch(owner) and REPO_PART_RE.fullmatch(name)) or ".." in repo or "--" in repo:
        raise Unservable(f"its chat template names {comment_text(repo)}, which is not a repo id")
    path = cache.local_file(repo, TOKENIZER_CONFIG, "main")
    if path is None:
        raise Unservable(
            f"its chat template comes from {repo}, whose {TOKENIZER_CONFIG} is not in the local cache "
            f"(fetch it, e.g. `hf download {repo} {TOKENIZER_CONFIG}`)"
        )
    try:
        if path.stat().st_size > TEMPLATE_MAX_BYTES:
            raise Unservable(f"{repo}'s {TOKENIZER_CONFIG} is larger than {TEMPLATE_MAX_BYTES:,} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Unservable(f"{repo}'s {TOKENIZER_CONFIG} cannot be read ({comment_text(str(exc))})") from exc
    template = data.get("chat_template") if isinstance(data, dict) else None
    if isinstance(template, list):  # named templates: [{"name": "default", "template": "..."}, ...]
        named = {item.get("name"): item.get("template") for item in template if isinstance(item, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    if not isinstance(template, str) or not template.strip():
        raise Unservable(f"{repo}'s {TOKENIZER_CONFIG} holds no chat_template")
    return template


def chat_template(alias: Alias) -> tuple[str, str, str]:
    """(option, value, template text) for the alias's chat template: ("", "", "") for the embedded one,
    ("chat-template", name, "") for a built-in, ("chat-template-file", file name, text) for one we write."""
    template = alias.chat_template
    if template == EMBEDDED_CHAT_TEMPLATE:
        return "", "", ""
    if template in BUILTIN_TEMPLATE_NAMES:
        return "chat-template", BUILTIN_TEMPLATE_NAMES[template], ""
    if template in TEMPLATE_TEXTS:
        return "chat-template-file", f"chat-template.{template}.jinja", TEMPLATE_TEXTS[template]
    if "/" in template:
        text = _repo_template(template)
        return "chat-template-file", f"chat-template.{template.replace('/', '--')}.jinja", text
    raise Unservable(f"llama.cpp knows no chat template called {comment_text(template)}")


def preset_build(*, aliases: Iterable[Alias] | None = None, template_dir: Path | None) -> Preset:
    """The preset for `aliases` (default: every alias, in name order). Template files are named relative to
    `template_dir` (the preset's folder); without one, aliases that need a template file are not served."""
    aliases = list(Alias.objects.all() if aliases is None else aliases)
    files = alias_files(aliases)
    preset = Preset()
    taken: dict[str, str] = {}
    for alias in aliases:
        try:
            served = _served(alias, files[alias.pk], template_dir=template_dir, preset=preset)
            if served.router_id in taken:
                raise Unservable(
                    f"llama-server would call it {served.router_id}, as it calls {taken[served.router_id]}"
                )
        except Unservable as exc:
            preset.unserved.append(UnservedAlias(alias=alias.alias, reason=str(exc)))
            continue
        taken[served.router_id] = alias.alias
        preset.served.append(served)
    preset.text = preset_text(preset)
    return preset


def _served(alias: Alias, found: AliasFile, *, template_dir: Path | None, preset: Preset) -> ServedAlias:
    name = alias.alias
    if not SECTION_RE.fullmatch(name) or name in RESERVED_SECTIONS:
        raise Unservable("its name cannot be a preset section (letters, digits and . _ : / - only)")
    path = model_path(alias, found)
    options = alias_options(alias)
    option, value, text = chat_template(alias)
    template_file = ""
    if text:
        if template_dir is None:
            raise Unservable(
                "its chat template must be written to a file beside the preset: set MODELDESK_LLAMA_PRESET_PATH "
                "or use `manage.py export_preset --output FILE`"
            )
        template_file = value
        value = str(template_dir / template_file)
        problem = value_problem(value)
        if problem:
            raise Unservable(f"its chat template file's path cannot be written in the preset: {problem}")
    if option:
        options.append((option, value))
    if text:
        preset.template_files[template_file] = text
    return ServedAlias(
        alias=name, router_id=router_id(name), model_path=str(path), options=tuple(options), template_file=template_file
    )


HEADER = (
    "; llama-server router preset written by ModelDesk from its aliases; changes made here are overwritten.\n"
    "; Serve it with: llama-server --models-preset THIS_FILE (sections are named as the router lists them).\n"
)


def preset_text(preset: Preset) -> str:
    lines = [HEADER, "version = 1\n", "\n[*]\n"]
    for served in preset.served:
        lines.append(f"\n[{served.router_id}]\n")
        if served.router_id != served.alias:
            lines.append(f"; alias {comment_text(served.alias)}\n")
        lines.append(f"model = {served.model_path}\n")
        lines.extend(f"{option} = {value}\n" for option, value in served.options)
    if preset.unserved:
        lines.append("\n; Not served:\n")
        lines.extend(f";   {comment_text(item.alias)}: {comment_text(item.reason)}\n" for item in preset.unserved)
    return "".join(lines)
