"""One alias for other runtimes (issue 10, item 4): the llama-server command line, an Ollama Modelfile and
BodhiApp's alias YAML. The model path and the llama-server options are the preset's (config/serving/preset.py)."""

from __future__ import annotations

import io
import json
import shlex
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.http import HttpResponse, StreamingHttpResponse

from aliases.file_status import AliasFile, alias_file, alias_files
from aliases.models import Alias
from aliases.transfer import alias_as_bodhi
from config.serving.preset import Unservable, alias_options, chat_template, model_path

FORMATS = ("llama-server", "ollama", "bodhi")
FORMAT_LABELS = {"llama-server": "llama-server command", "ollama": "Ollama Modelfile", "bodhi": "BodhiApp alias YAML"}
EXTENSIONS = {"llama-server": "sh", "ollama": "Modelfile", "bodhi": "yaml"}

# Ollama's Go templates for our built-in ids (Ollama reads an embedded template from the GGUF itself).
OLLAMA_TEMPLATES = {
    "llama3": (
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
    ),
    "chatml": (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
    ),
    "phi3": (
        "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
        "{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}"
        "<|assistant|>\n{{ .Response }}<|end|>\n"
    ),
    "gemma": (
        "<start_of_turn>user\n{{ if .System }}{{ .System }} {{ end }}{{ .Prompt }}<end_of_turn>\n"
        "<start_of_turn>model\n{{ .Response }}<end_of_turn>\n"
    ),
    "llama2": "[INST] {{ if .System }}<<SYS>>{{ .System }}<</SYS>>\n\n{{ end }}{{ .Prompt }} [/INST] {{ .Response }}",
    "tinyllama": (
        "{{ if .System }}<|system|>\n{{ .System }}</s>\n{{ end }}"
        "{{ if .Prompt }}<|user|>\n{{ .Prompt }}</s>\n{{ end }}"
        "<|assistant|>\n{{ .Response }}</s>\n"
    ),
}
# (our field, Ollama's PARAMETER) for what Ollama's options support.
OLLAMA_PARAMETERS = (
    ("n_ctx", "num_ctx"),
    ("n_threads", "num_thread"),
    ("n_keep", "num_keep"),
    ("n_predict", "num_predict"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
)


@dataclass(frozen=True)
class Export:
    format: str
    label: str
    text: str
    filename: str


def _ollama_string(value: str) -> str:
    # A quoted string; a value with a line break uses Ollama's triple quotes (its parser takes them literally).
    if "\n" in value or "\r" in value:
        if '"""' in value:
            raise Unservable('a value holds both a line break and """, which a Modelfile cannot quote')
        return f'"""{value}"""'
    return json.dumps(value, ensure_ascii=False)


def llama_server_command(alias: Alias, *, template_dir: Path | None = None, found: AliasFile | None = None) -> str:
    """`llama-server --model PATH --alias NAME ...`, shell-quoted; a template we write needs `template_dir`.
    `found`: the alias's file when the caller has it already (the alias page reads it once for every section)."""
    found = found or alias_file(alias)
    args = ["llama-server", "--model", str(model_path(alias, found)), "--alias", alias.alias]
    for option, value in alias_options(alias):
        args += [f"--{option}", value]
    option, value, text = chat_template(alias)
    lines = []
    if text:
        if template_dir is None:
            lines.append(
                f"# The chat template ({alias.chat_template}) is a file ModelDesk writes beside its preset: set "
                "MODELDESK_LLAMA_PRESET_PATH, or save the template given below as chat-template.jinja.\n"
            )
            value = "chat-template.jinja"
        else:
            value = str(template_dir / value)
    if option:
        args += [f"--{option}", value]
    lines.append(" ".join(shlex.quote(arg) for arg in args) + "\n")
    if alias.stop:
        lines.append("# Stop words are per request in llama-server; send them with each request: ")
        lines.append(json.dumps(alias.stop, ensure_ascii=False) + "\n")
    if text and template_dir is None:
        lines.append("# chat-template.jinja:\n" + "".join(f"#   {line}\n" for line in text.splitlines()))
    return "".join(lines)


def ollama_modelfile(alias: Alias, *, found: AliasFile | None = None) -> str:
    found = found or alias_file(alias)
    lines = [f"# Ollama Modelfile for the ModelDesk alias {json.dumps(alias.alias)}: ollama create NAME -f FILE\n"]
    lines.append(f"FROM {_ollama_string(str(model_path(alias, found)))}\n")
    for name, parameter in OLLAMA_PARAMETERS:
        value = getattr(alias, name)
        if value is not None:
            lines.append(f"PARAMETER {parameter} {value!r}\n" if isinstance(value, float) else
                         f"PARAMETER {parameter} {value}\n")  # fmt: skip
    seed = alias.seed if alias.seed is not None else alias.n_seed
    if seed is not None:
        lines.append(f"PARAMETER seed {seed}\n")
    lines.extend(f"PARAMETER stop {_ollama_string(word)}\n" for word in alias.stop or ())
    template = OLLAMA_TEMPLATES.get(alias.chat_template)
    if template:
        lines.append(f"TEMPLATE {_ollama_string(template)}\n")
    elif alias.chat_template not in ("embedded",):
        lines.append(f"# The chat template {alias.chat_template} has no Ollama (Go) equivalent here; write TEMPLATE.\n")
    if alias.n_parallel is not None:
        lines.append(f"# Parallel requests are Ollama's server setting: OLLAMA_NUM_PARALLEL={alias.n_parallel}\n")
    return "".join(lines)


# libyaml's emitter when PyYAML has it: the same text as safe_dump's (checked on 3,000 varied aliases), a quarter
# of the time on every alias page.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def bodhi_yaml(alias: Alias) -> str:
    """One alias as BodhiApp's alias file (aliases/transfer.py's mapping, as a single YAML document)."""
    return yaml.dump(alias_as_bodhi(alias), Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True)


def export_filename(alias: Alias, fmt: str) -> str:
    # BodhiApp names its files after the alias with ':' as '--'; a generated alias's '/' too.
    stem = "".join(
        ch if ch.isalnum() or ch in "._-" else "-" for ch in alias.alias.replace(":", "--").replace("/", "--")
    )
    return "Modelfile" if fmt == "ollama" else f"{stem}.{EXTENSIONS[fmt]}"


def alias_export(alias: Alias, fmt: str, *, template_dir: Path | None = None, found: AliasFile | None = None) -> Export:
    """The alias in `fmt` (one of FORMATS). Raises Unservable when its file is not local (llama-server, Ollama)."""
    if fmt == "llama-server":
        text = llama_server_command(alias, template_dir=template_dir, found=found)
    elif fmt == "ollama":
        text = ollama_modelfile(alias, found=found)
    elif fmt == "bodhi":
        text = bodhi_yaml(alias)
    else:
        raise ValueError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
    return Export(format=fmt, label=FORMAT_LABELS[fmt], text=text, filename=export_filename(alias, fmt))


def alias_exports(
    alias: Alias, *, template_dir: Path | None = None, found: AliasFile | None = None
) -> list[Export | tuple[str, str]]:
    """Every format for the alias page: an Export, or (label, why it cannot be made). The file is read once."""
    found = found or alias_file(alias)
    result: list[Export | tuple[str, str]] = []
    for fmt in FORMATS:
        try:
            result.append(alias_export(alias, fmt, template_dir=template_dir, found=found))
        except Unservable as exc:
            result.append((FORMAT_LABELS[fmt], str(exc)))
    return result


# --- many aliases at once (the bulk action's runtime formats) -----------------------------------------------------
BULK_FORMATS = ("llama-server", "ollama")
BULK_FORMAT_LABELS = {"llama-server": "llama-server commands (.sh)", "ollama": "Ollama Modelfiles (.zip)"}
# Aliases whose files are looked up together (two queries per batch, whatever its size).
BULK_BATCH = 500


def _in_batches(aliases: Iterable[Alias]) -> Iterator[tuple[Alias, AliasFile]]:
    batch: list[Alias] = []
    for alias in aliases:
        batch.append(alias)
        if len(batch) == BULK_BATCH:
            yield from _with_files(batch)
            batch = []
    yield from _with_files(batch)


def _with_files(batch: list[Alias]) -> Iterator[tuple[Alias, AliasFile]]:
    files = alias_files(batch)
    for alias in batch:
        yield alias, files[alias.pk]


def llama_server_script(aliases: Iterable[Alias]) -> Iterator[str]:
    """One `llama-server` command per alias (each serves one model), with the reason for any left out."""
    yield "#!/bin/sh\n# llama-server commands for ModelDesk aliases: run the one you want (each serves one alias).\n"
    for alias, found in _in_batches(aliases):
        try:
            command = llama_server_command(alias, found=found)
        except Unservable as exc:
            yield f"\n# {json.dumps(alias.alias)} is left out: {exc}.\n"
        else:
            yield f"\n# {json.dumps(alias.alias)}\n{command}"


def ollama_bundle(aliases: Iterable[Alias]) -> bytes:
    """A zip with a Modelfile per alias (in a folder named like its export) and `create-all.sh`, which runs
    `ollama create` for each; aliases that cannot be exported are listed in README.txt with the reason."""
    buffer = io.BytesIO()
    create = ["#!/bin/sh\n# Creates an Ollama model for each ModelDesk alias in this folder.\nset -e\n"]
    left_out: list[str] = []
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for alias, found in _in_batches(aliases):
            try:
                text = ollama_modelfile(alias, found=found)
            except Unservable as exc:
                left_out.append(f"{alias.alias}: {exc}.\n")
                continue
            folder = export_filename(alias, "bodhi").removesuffix(".yaml")
            while folder in used:  # two names that read the same once made safe for a file name
                folder += "-"
            used.add(folder)
            bundle.writestr(f"{folder}/Modelfile", text)
            create.append(f"ollama create {shlex.quote(alias.alias)} -f {shlex.quote(folder + '/Modelfile')}\n")
        bundle.writestr("create-all.sh", "".join(create))
        if left_out:
            bundle.writestr("README.txt", "Aliases left out (their file is not local):\n" + "".join(left_out))
    return buffer.getvalue()


def bulk_export_response(aliases: Iterable[Alias], fmt: str, *, filename: str = "aliases") -> HttpResponse:
    if fmt == "llama-server":
        response: HttpResponse = StreamingHttpResponse(
            llama_server_script(aliases), content_type="text/x-shellscript; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}.sh"'
        return response
    if fmt == "ollama":
        response = HttpResponse(ollama_bundle(aliases), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}-ollama.zip"'
        return response
    raise ValueError(f"Unknown format {fmt!r}; use one of {', '.join(BULK_FORMATS)}.")
