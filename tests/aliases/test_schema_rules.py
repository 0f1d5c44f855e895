"""Issue 7, item 9: the OpenAPI schema states the rules the API enforces, and its patterns agree with the validators."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliases.validators import (
    ALIAS_NAME_PATTERN,
    FILENAME_SCHEMA_PATTERN,
    REPO_SCHEMA_PATTERN,
    SNAPSHOT_SCHEMA_PATTERN,
    STOP_WORD_SCHEMA_PATTERN,
    TEXT_SCHEMA_PATTERN,
    chat_template_schema_pattern,
    validate_alias_name,
    validate_chat_template,
    validate_filename,
    validate_no_control_characters,
    validate_repo,
    validate_snapshot,
    validate_stop,
)

pytestmark = pytest.mark.django_db


def ecma_matches(pattern: str, value: str) -> bool:
    """How a JSON Schema validator reads `pattern` (ECMA-262): `$` is the end of the text, never before a "\\n"."""
    return re.search(pattern.replace("$", r"\Z"), value) is not None


def accepts(validator, value: str) -> bool:
    try:
        validator(value)
    except ValidationError:
        return False
    return True


RULES = {
    "alias": (ALIAS_NAME_PATTERN, validate_alias_name, 64),
    "repo": (REPO_SCHEMA_PATTERN, validate_repo, 96),
    "snapshot": (SNAPSHOT_SCHEMA_PATTERN, validate_snapshot, 128),
    "chat_template": (chat_template_schema_pattern(), validate_chat_template, 96),
    "user": (TEXT_SCHEMA_PATTERN, validate_no_control_characters, 256),
    "stop word": (STOP_WORD_SCHEMA_PATTERN, lambda value: validate_stop([value]), 128),
    # ASCII only below: the pattern cannot count UTF-8 bytes per path segment, the validator does.
    "filename": (FILENAME_SCHEMA_PATTERN, validate_filename, 255),
}
# Characters near every rule's edges: separators, dots, dashes, colons, control characters, a backslash, hex.
EDGY = st.text(alphabet=st.sampled_from("aZ09fF.-_:/\\ \n\r\t\x00\x01\x7f\x85\u2028é" + "gGuU" + "lock"), max_size=20)
SAMPLES = [
    "main",
    "a" * 40,
    "A" * 40,
    "main\n",
    "v1.0.lock",
    "refs/pr/1",
    "a//b",
    "owner/name",
    "owner/na--me",
    "owner/name/x",
    "x.gguf",
    "dir/x.GGUF",
    "../x.gguf",
    "./x.gguf",
    "a/./x.gguf",
    "/x.gguf",
    "a\\x.gguf",
    "..gguf",
    "llama3",
    "llama3\n",
    "\n",
    "",
    "a:b",
    "a b",
]


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("value", SAMPLES)
def test_schema_pattern_agrees_with_the_validator_on_edge_cases(rule, value):
    pattern, validator, max_length = RULES[rule]
    if rule == "stop word" and value == "":
        return  # the stop list's minLength 1 says it, not the pattern
    in_schema = ecma_matches(pattern, value) and len(value) <= max_length

    assert in_schema == accepts(validator, value), (rule, value)


@pytest.mark.parametrize("rule", list(RULES))
def test_schema_pattern_agrees_with_the_validator_on_generated_text(rule):
    pattern, validator, max_length = RULES[rule]

    @settings(max_examples=300, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(value=EDGY | st.from_regex(pattern.replace("$", r"\Z")))
    def agree(value):
        if rule == "filename" and not value.isascii():
            value = value.encode("ascii", "replace").decode()
        if len(value) > max_length or (rule == "stop word" and value == ""):
            return
        assert ecma_matches(pattern, value) == accepts(validator, value), (rule, value)

    agree()


# --- the schema itself ---------------------------------------------------------------------------------------


@pytest.fixture
def schema(viewer_client) -> dict:
    response = viewer_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _parameters(schema: dict, path: str, method: str = "get") -> dict[str, dict]:
    return {parameter["name"]: parameter["schema"] for parameter in schema["paths"][path][method]["parameters"]}


@pytest.mark.parametrize("path", ["/api/models", "/api/modelfiles", "/api/modelfiles/status"])
def test_list_parameters_state_their_bounds_and_choices(schema, path):
    parameters = _parameters(schema, path)

    assert parameters["page"]["minimum"] == 1 and parameters["page"]["default"] == 1
    assert (parameters["page_size"]["minimum"], parameters["page_size"]["maximum"]) == (1, 100)
    assert parameters["page_size"]["default"] == 30
    assert parameters["sort"]["enum"] and parameters["sort_order"]["enum"] == ["asc", "desc"]
    assert parameters["search"]["pattern"] == r"^[^\u0000]*$"


def test_the_status_filter_lists_its_values(schema):
    status = _parameters(schema, "/api/modelfiles/status")["status"]

    assert status["type"] == "array"
    assert set(status["items"]["enum"]) == {
        "queued",
        "downloading",
        "verifying",
        "paused",
        "completed",
        "failed",
        "cancelled",
    }


def test_alias_request_fields_state_the_models_rules(schema):
    alias = schema["components"]["schemas"]["AliasRequest"]
    properties = alias["properties"]

    assert alias["additionalProperties"] is False
    assert properties["alias"]["pattern"] == ALIAS_NAME_PATTERN
    assert properties["alias"]["minLength"] == 1 and properties["alias"]["maxLength"] == 64
    assert properties["repo"]["pattern"] == REPO_SCHEMA_PATTERN and properties["repo"]["maxLength"] == 96
    assert properties["filename"]["pattern"] == FILENAME_SCHEMA_PATTERN
    assert properties["snapshot"]["pattern"] == SNAPSHOT_SCHEMA_PATTERN
    assert properties["chat_template"]["pattern"] == chat_template_schema_pattern()
    # Read-only keys are accepted and ignored, so they are allowed, never required.
    assert "version" in properties and "version" not in alias["required"]
    params = schema["components"]["schemas"]["RequestParamsRequest"]["properties"]
    assert params["stop"]["maxItems"] == 4 and params["stop"]["uniqueItems"] is True
    assert params["stop"]["items"]["minLength"] == 1 and params["stop"]["items"]["maxLength"] == 128
    assert params["temperature"]["minimum"] == 0 and params["temperature"]["maximum"] == 2
    assert params["user"]["maxLength"] == 256 and "pattern" in params["user"]


def test_responses_do_not_promise_the_request_patterns(schema):
    # Rows stored before a rule was checked whole can still be read; the response schema must not reject them.
    assert "pattern" not in schema["components"]["schemas"]["Alias"]["properties"]["alias"]


def test_pull_request_fields_state_the_rules(schema):
    pull = schema["components"]["schemas"]["PullRequest"]

    assert pull["additionalProperties"] is False
    assert pull["properties"]["revision"]["pattern"] == SNAPSHOT_SCHEMA_PATTERN


def test_every_operation_documents_the_errors_it_can_answer(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"401", "403", "429"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in statuses, (method, path)
            if method in ("post", "put", "patch"):
                assert "413" in statuses, (method, path)
            if "requestBody" in operation:
                assert "415" in statuses, (method, path)
            for status in statuses - {"200", "201", "204"}:
                content = operation["responses"][status]["content"]["application/json"]["schema"]
                assert "$ref" in content, (method, path, status)
