"""What the fake OpenAI refuses, and the error it answers: held to the ``openai`` SDK's own types.

Shapes come from the SDK's request TypedDicts (``openai.types``), validated with pydantic's
TypeAdapter: strict types (a string is not a number), no unknown keys at any level (the API answers
``Unknown parameter``), required keys required. Two adjustments make the SDK types checkable:

* ``Iterable[X]`` becomes ``list[X]``: pydantic validates ``Iterable`` lazily (a generator that only
  fails when consumed), so a wrong item would pass;
* ``Required[...]`` is read from the resolved annotations: the SDK modules use
  ``from __future__ import annotations``, so ``__required_keys__`` cannot see it.

Rules the types cannot express are checked after the shape, each citing its vendor source. Every
refusal is HTTP 400 ``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``
(openapi.yaml ``components.schemas.Error``: code, message, param and type are all required; the SDK
reads them in ``openai._exceptions.APIError``).
"""

from __future__ import annotations

import collections.abc
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import typing_extensions
from openai.types.conversations.conversation_create_params import ConversationCreateParams
from openai.types.conversations.item_create_params import ItemCreateParams
from openai.types.conversations.item_list_params import ItemListParams
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
from pydantic import ConfigDict, TypeAdapter, ValidationError

# openapi.yaml CreateResponse.max_output_tokens: {"type": "integer", "minimum": 16}
MIN_MAX_OUTPUT_TOKENS = 16
# shared_params/metadata.py docstring (every `metadata` field): "Set of 16 key-value pairs ... Keys are
# strings with a maximum length of 64 characters. Values are strings with a maximum length of 512".
METADATA_MAX_KEYS = 16
METADATA_MAX_KEY_CHARS = 64
METADATA_MAX_VALUE_CHARS = 512
# ResponseFormatTextJSONSchemaConfigParam.name docstring: "Must be a-z, A-Z, 0-9, or contain underscores
# and dashes, with a maximum length of 64" (openapi.yaml TextResponseFormatJsonSchema.name).
FORMAT_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# openapi.yaml ContextManagementParam.compact_threshold: {"type": "integer", "minimum": 1000}.
MIN_COMPACT_THRESHOLD = 1000
# ConversationCreateParams.items / ItemCreateParams.items docstrings: "You may add up to 20 items at a
# time" (openapi.yaml CreateConversationBody.items.maxItems: 20).
MAX_ITEMS_PER_CALL = 20
# ItemListParams.limit docstring: "Limit can range between 1 and 100, and the default is 20."
ITEMS_LIMIT_RANGE = (1, 100)
DEFAULT_ITEMS_LIMIT = 20

type JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ApiError:
    """One OpenAI error answer (openapi.yaml ``Error``: message, type, param, code)."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> JsonObject:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None, code: str | None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", param, code)


# SDK types, made checkable -----------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True)


def _checkable(hint: Any, memo: dict[Any, Any]) -> Any:
    """The same type with ``Iterable`` as ``list`` and every TypedDict closed (extra="forbid")."""
    if typing_extensions.is_typeddict(hint):
        if hint not in memo:
            memo[hint] = hint  # a self-reference (none in these params today) keeps the SDK's type
            memo[hint] = _checkable_typeddict(hint, memo)
        return memo[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (
        typing.Required,
        typing.NotRequired,
        typing_extensions.Required,
        typing_extensions.NotRequired,
    ):
        return _checkable(args[0], memo)
    if origin is typing.Annotated:
        return typing.Annotated[(_checkable(args[0], memo), *hint.__metadata__)]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_checkable(arg, memo) for arg in args)]  # noqa: UP007
    if origin in (collections.abc.Iterable, collections.abc.Sequence, list):
        return list[_checkable(args[0], memo)]  # type: ignore[misc]
    if origin in (dict, collections.abc.Mapping):
        return dict[_checkable(args[0], memo), _checkable(args[1], memo)]  # type: ignore[misc]
    return hint


def _checkable_typeddict(td: Any, memo: dict[Any, Any]) -> Any:
    hints = typing.get_type_hints(td, include_extras=True)
    fields: dict[str, Any] = {}
    for name, hint in hints.items():
        origin = typing.get_origin(hint)
        required = origin in (typing.Required, typing_extensions.Required) or (
            td.__total__ and origin not in (typing.NotRequired, typing_extensions.NotRequired)
        )
        checked = _checkable(hint, memo)
        fields[name] = typing_extensions.Required[checked] if required else checked
    factory: Any = typing_extensions.TypedDict  # a TypedDict built at run time
    closed = factory(td.__name__, fields, total=False)
    closed.__pydantic_config__ = _STRICT
    return closed


@functools.cache
def sdk_adapter(td: Any) -> TypeAdapter[Any]:
    return TypeAdapter(_checkable(td, {}))


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a decimal",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "typed_dict_type": "an object",
    "model_type": "an object",
    "list_type": "an array",
    "none_required": "null",
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _param(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _data_path(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[list[str | int], Any, list[str]]:
    """The request path of an error, skipping pydantic's union-member tags; and the tags."""
    path: list[str | int] = []
    tags: list[str] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and (part in node or (last and kind == "missing"))
        ):
            path.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        else:
            tags.append(str(part))
    return path, node, tags


def shape_error(adapter: TypeAdapter[Any], data: Any) -> ApiError | None:
    """The API's answer when ``data`` does not fit the SDK type, else None."""
    try:
        adapter.validate_python(data)
    except ValidationError as error:
        return _best(error, data)
    return None


def _best(error: ValidationError, data: Any) -> ApiError:
    # A union reports one error per member it tried. The member the request meant is the one the
    # errors got deepest into; among those, the one with the fewest errors.
    candidates = []
    per_tags: dict[tuple[str, ...], int] = {}
    for detail in error.errors(include_url=False):
        path, value, tags = _data_path(data, tuple(detail["loc"]), detail["type"])
        candidates.append((path, value, tags, detail))
        per_tags[tuple(tags)] = per_tags.get(tuple(tags), 0) + 1
    path, value, _, detail = min(candidates, key=lambda c: (-len(c[0]), per_tags[tuple(c[2])]))
    param = _param(path) or None
    kind = detail["type"]
    if kind == "missing":
        return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    if kind == "extra_forbidden":
        return invalid(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
    if kind == "literal_error":
        supported = str((detail.get("ctx") or {}).get("expected", ""))
        return invalid(
            f"Invalid value: '{value}'. Supported values are: {supported}.", param, "invalid_value"
        )
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return invalid(
            f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
            param,
            "invalid_type",
        )
    return invalid(f"Invalid value for '{param}': {detail['msg']}.", param, "invalid_value")


# Rules the types cannot express --------------------------------------------------------------------------


def metadata_error(metadata: Any, param: str = "metadata") -> ApiError | None:
    # shared_params/metadata.py docstring: 16 pairs, keys <= 64 characters, values <= 512 characters.
    if not isinstance(metadata, dict):
        return None
    if len(metadata) > METADATA_MAX_KEYS:
        return invalid(
            f"Invalid '{param}': too many properties. Expected an object with at most "
            f"{METADATA_MAX_KEYS} properties, but got an object with {len(metadata)} properties instead.",
            param,
            "object_above_max_properties",
        )
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY_CHARS:
            return invalid(
                f"Invalid '{param}': string too long. Expected a string with maximum length "
                f"{METADATA_MAX_KEY_CHARS}, but got a string with length {len(key)} instead.",
                param,
                "string_above_max_length",
            )
        if isinstance(value, str) and len(value) > METADATA_MAX_VALUE_CHARS:
            return invalid(
                f"Invalid '{param}.{key}': string too long. Expected a string with maximum length "
                f"{METADATA_MAX_VALUE_CHARS}, but got a string with length {len(value)} instead.",
                f"{param}.{key}",
                "string_above_max_length",
            )
    return None


def text_format_error(text: Any) -> ApiError | None:
    text_format = text.get("format") if isinstance(text, dict) else None
    if not isinstance(text_format, dict) or text_format.get("type") != "json_schema":
        return None
    name = str(text_format.get("name", ""))
    # ResponseFormatTextJSONSchemaConfigParam.name: a-z, A-Z, 0-9, "_" and "-", at most 64 characters.
    if len(name) > 64:
        return invalid(
            "Invalid 'text.format.name': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead.",
            "text.format.name",
            "string_above_max_length",
        )
    if not FORMAT_NAME.match(name):
        return invalid(
            "Invalid 'text.format.name': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]+$'.",
            "text.format.name",
            "invalid_value",
        )
    if text_format.get("strict") is True:
        problem = strict_schema_problem(text_format.get("schema"))
        if problem is not None:
            return invalid(
                f"Invalid schema for response_format '{name}': {problem}",
                "text.format.schema",
                "invalid_json_schema",
            )
    return None


def strict_schema_problem(schema: Any) -> str | None:
    """What strict Structured Outputs refuses in a schema, or None.

    ResponseFormatTextJSONSchemaConfigParam.strict: "Only a subset of JSON Schema is supported when
    `strict` is `true`", per the Structured Outputs guide
    (https://developers.openai.com/api/docs/guides/structured-outputs, "Supported schemas"): the root
    is an object (not anyOf), every object sets ``additionalProperties: false``, and every property
    of an object is listed in ``required``.
    """
    if not isinstance(schema, dict):
        return "schema must be a JSON Schema object."
    if schema.get("type") != "object" or "anyOf" in schema:
        got = schema.get("type", "anyOf" if "anyOf" in schema else None)
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    return _object_problem(schema, ())


def _object_problem(node: Any, context: tuple[str, ...]) -> str | None:
    if not isinstance(node, dict):
        return None
    where = f"In context={context!r}, "
    kinds = node.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds) or "properties" in node
    if is_object:
        properties = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        required = node.get("required")
        if not isinstance(required, list):
            required = []
        missing = [key for key in properties if key not in required]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including every key "
                f"in properties. Missing '{missing[0]}'."
            )
        extra = [key for key in required if key not in properties]
        if extra:
            return where + f"Extra required key '{extra[0]}' supplied."
        for key, sub in properties.items():
            if problem := _object_problem(sub, (*context, "properties", key)):
                return problem
    if problem := _object_problem(node.get("items"), (*context, "items")):
        return problem
    for combinator in ("anyOf", "allOf", "oneOf"):
        for index, sub in enumerate(node.get(combinator) or []):
            if problem := _object_problem(sub, (*context, combinator, str(index))):
                return problem
    for defs in ("$defs", "definitions"):
        for key, sub in (node.get(defs) or {}).items():
            if problem := _object_problem(sub, (*context, defs, key)):
                return problem
    return None


def response_create_error(body: JsonObject) -> ApiError | None:
    """POST /v1/responses: the SDK's ResponseCreateParamsNonStreaming, then the documented rules."""
    if body.get("stream") is True:
        # Not a vendor rule: this fake answers JSON only (the engine does not stream).
        return invalid("This fake does not implement streaming; send stream=false.", "stream", "unsupported")
    if problem := shape_error(sdk_adapter(ResponseCreateParamsNonStreaming), body):
        return problem
    if body.get("model") is None and body.get("prompt") is None:
        # ResponseCreateParamsBase.model: the model that generates the response; without a stored
        # `prompt` (which carries its own) there is nothing to run.
        return invalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if body.get("conversation") is not None and body.get("previous_response_id") is not None:
        # ResponseCreateParamsBase.previous_response_id: "Cannot be used in conjunction with `conversation`."
        return invalid(
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            None,
            "mutually_exclusive_parameters",
        )
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit < MIN_MAX_OUTPUT_TOKENS:
        # openapi.yaml CreateResponse.max_output_tokens: minimum 16.
        return invalid(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_MAX_OUTPUT_TOKENS}, but got {limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
        # ResponseCreateParamsBase.temperature: "What sampling temperature to use, between 0 and 2."
        bound = "below minimum" if temperature < 0 else "above maximum"
        limit_text = ">= 0" if temperature < 0 else "<= 2"
        return invalid(
            f"Invalid 'temperature': decimal {bound} value. Expected a value {limit_text}, "
            f"but got {temperature} instead.",
            "temperature",
            "decimal_below_min_value" if temperature < 0 else "decimal_above_max_value",
        )
    top_logprobs = body.get("top_logprobs")
    if isinstance(top_logprobs, int) and not 0 <= top_logprobs <= 20:
        # ResponseCreateParamsBase.top_logprobs: "An integer between 0 and 20".
        return invalid(
            f"Invalid 'top_logprobs': expected a value between 0 and 20, but got {top_logprobs} instead.",
            "top_logprobs",
            "invalid_value",
        )
    identifier = body.get("safety_identifier")
    if isinstance(identifier, str) and len(identifier) > 128:
        # ResponseCreateParamsBase.safety_identifier: "with a maximum length of 128 characters".
        return invalid(
            "Invalid 'safety_identifier': string too long. Expected a string with maximum length 128, "
            f"but got a string with length {len(identifier)} instead.",
            "safety_identifier",
            "string_above_max_length",
        )
    if problem := metadata_error(body.get("metadata")):
        return problem
    if problem := text_format_error(body.get("text")):
        return problem
    return context_management_error(body.get("context_management"))


def context_management_error(entries: Any) -> ApiError | None:
    if entries is None:
        return None
    if not entries:
        # openapi.yaml CreateResponse.context_management: an array with minItems 1.
        return invalid(
            "Invalid 'context_management': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "context_management",
            "empty_array",
        )
    for index, entry in enumerate(entries):
        param = f"context_management[{index}]"
        if entry.get("type") != "compaction":
            # ContextManagement.type: "Currently only 'compaction' is supported."
            return invalid(
                f"Invalid value: '{entry.get('type')}'. Supported values are: 'compaction'.",
                f"{param}.type",
                "invalid_value",
            )
        threshold = entry.get("compact_threshold")
        if isinstance(threshold, int) and threshold < MIN_COMPACT_THRESHOLD:
            # openapi.yaml ContextManagementParam.compact_threshold: minimum 1000.
            return invalid(
                f"Invalid '{param}.compact_threshold': integer below minimum value. Expected a value "
                f">= {MIN_COMPACT_THRESHOLD}, but got {threshold} instead.",
                f"{param}.compact_threshold",
                "integer_below_min_value",
            )
    return None


def _items_count_error(items: Any) -> ApiError | None:
    if isinstance(items, list) and len(items) > MAX_ITEMS_PER_CALL:
        # "You may add up to 20 items at a time" (ConversationCreateParams / ItemCreateParams.items).
        return invalid(
            f"Invalid 'items': array too long. Expected an array with maximum length {MAX_ITEMS_PER_CALL}, "
            f"but got an array with length {len(items)} instead.",
            "items",
            "array_above_max_length",
        )
    return None


def conversation_create_error(body: JsonObject) -> ApiError | None:
    """POST /v1/conversations: the SDK's ConversationCreateParams, metadata and the 20-item limit."""
    if problem := shape_error(sdk_adapter(ConversationCreateParams), body):
        return problem
    return metadata_error(body.get("metadata")) or _items_count_error(body.get("items"))


def items_create_error(body: JsonObject) -> ApiError | None:
    """POST /v1/conversations/{id}/items: the SDK's ItemCreateParams and the 20-item limit."""
    if problem := shape_error(sdk_adapter(ItemCreateParams), body):
        return problem
    return _items_count_error(body.get("items"))


def items_list_query(query: dict[str, list[str]]) -> JsonObject | ApiError:
    """GET /v1/conversations/{id}/items: the query as ItemListParams (strings parsed as the API does)."""
    params: JsonObject = {}
    for key, values in query.items():
        name = key.removesuffix("[]")
        if name == "include":
            params["include"] = list(values)
        elif name == "limit":
            raw = values[-1]
            params["limit"] = int(raw) if raw.lstrip("-").isdigit() else raw
        else:
            params[name] = values[-1]
    if problem := shape_error(sdk_adapter(ItemListParams), params):
        return problem
    limit = params.get("limit", DEFAULT_ITEMS_LIMIT)
    low, high = ITEMS_LIMIT_RANGE
    if not low <= limit <= high:
        # ItemListParams.limit: "Limit can range between 1 and 100".
        return invalid(
            f"Invalid 'limit': integer out of range. Expected a value between {low} and {high}, "
            f"but got {limit} instead.",
            "limit",
            "invalid_value",
        )
    return params
