"""OpenAI Embeddings requests (`POST /embeddings`): validation, the input-token bound for
admission, and the estimate used when a provider omits usage.

Fields from the official SDK (openai-python `types/embedding_create_params.py` and
`resources/embeddings.py`) and the API reference (developers.openai.com/api/reference, Embeddings):
- `model` (required) and `input` (required): a string, an array of strings, an array of token ids,
  or an array of token-id arrays. No empty string, no empty array, at most 2048 items.
- `dimensions` (int, text-embedding-3 and later), `encoding_format` ("float" | "base64"), `user`.
  The SDK sends `encoding_format: "base64"` unless the caller chose one, and decodes it itself
  (`lib/_parsing/_embeddings.py`), so base64 is the usual case and is passed through untouched.

Every error is a `GatewayError(400, ...)` in OpenAI's wording with `param` naming the offending
value (`input[3]`, `input[1][0]`). Unlike chat, top-level fields we do not know are refused
here: there is one upstream dialect for embeddings and no translation step that would judge them,
and silently forwarding a typo would embed with settings the client did not ask for.
"""

from __future__ import annotations

from core.errors import ErrorCode, GatewayError

from .chat_format import _error, _expect_str, _invalid_type, _is_int, _missing
from .tokens import tokens_for_text

FIELDS = ("model", "input", "dimensions", "encoding_format", "user")
ENCODING_FORMATS = ("float", "base64")
MAX_INPUTS = 2048  # "any array must be 2048 dimensions or less" (SDK docstring of `input`)
PER_INPUT_BOUND = 4  # as tokens.ITEM_BOUND: a separator or a start/end marker a provider adds

_MISSING = object()


def embeddings_request_validate(body: object) -> dict:
    """Raise GatewayError(400) for anything OpenAI would reject; return `body` unchanged."""
    if not isinstance(body, dict):
        raise _invalid_type("body", "an object", body)
    model = body.get("model")
    if model is None or model == "":
        raise _error("model", "you must provide a model parameter", None)
    _expect_str(body, "model", "model")
    if body.get("stream") not in (None, False):
        # The API has no streamed form; say so rather than call it an unknown field.
        raise _error("stream", "Embeddings are not streamed: remove 'stream' from the request.",
                     ErrorCode.UNSUPPORTED_PARAMETER)
    for key in body:
        if key not in FIELDS and key != "stream":
            raise _error(key, f"Unknown parameter: '{key}'. Embeddings accept: {', '.join(FIELDS)}.",
                         ErrorCode.UNKNOWN_PARAMETER)
    _validate_input(body.get("input", _MISSING))
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not _is_int(dimensions):
            raise _invalid_type("dimensions", "an integer", dimensions)
        if dimensions < 1:
            raise _error("dimensions", f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, "
                                       f"but got {dimensions} instead.", ErrorCode.INTEGER_BELOW_MIN_VALUE)
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODING_FORMATS:
        raise _error("encoding_format", f"Invalid value for 'encoding_format': '{encoding}'. Supported values are: "
                                        "'float', 'base64'.")
    _expect_str(body, "user", "user")
    return body


def embeddings_upstream_body(body: dict, *, upstream_model: str) -> dict:
    """What goes upstream: the known fields that were given, under the route's model name."""
    out = {key: body[key] for key in FIELDS if body.get(key) is not None}
    out["model"] = upstream_model
    return out


def embeddings_dimensions_check(body: dict, model) -> None:
    """400 when `dimensions` is past the model's own size (catalog `dimensions`, when set): the
    body validator runs before the model is known, so this runs when the request is built."""
    dimensions = body.get("dimensions")
    most = getattr(model, "dimensions", None)
    if dimensions is not None and most and dimensions > most:
        raise _error("dimensions", f"Invalid 'dimensions': integer above maximum value. `{model.public_id}` returns "
                                   f"at most {most} dimensions, but got {dimensions} instead.",
                     ErrorCode.INTEGER_ABOVE_MAX_VALUE)


def embeddings_inputs(body: dict) -> list[str | list[int]]:
    """The request's inputs as a list: each a string or a list of token ids (validated body)."""
    value = body["input"]
    if isinstance(value, str):
        return [value]
    if value and _is_int(value[0]):
        return [value]  # one token array
    return list(value)


def embeddings_tokens_bound(body: dict, *, unbounded_tokens: int, image_tokens: int = 0) -> int:
    """The most input tokens this (validated) request can cost, for admission.

    A token array costs its own length. A text costs at most its UTF-8 byte length (byte-level
    BPE: every token covers at least one byte, as `tokens.tokens_upper_bound` argues) plus
    PER_INPUT_BOUND for a start or end marker a provider may add. No input is billed past the
    model's input window (`unbounded_tokens`: the catalog's context window, per input for an
    embedding model): a longer one is refused by the provider (OpenAI) or truncated to it.
    `image_tokens` is accepted for the operations' common signature; embeddings take no images.
    """
    total = 0
    for item in embeddings_inputs(body):
        size = len(item.encode("utf-8", "surrogatepass")) if isinstance(item, str) else len(item)
        bound = size + PER_INPUT_BOUND
        total += min(bound, unbounded_tokens) if unbounded_tokens > 0 else bound
    return total


def embeddings_tokens_estimate(body: dict) -> int:
    """Input tokens when the provider did not say (flagged as an estimate in the ledger): token
    arrays count exactly, text by the usual ~4 characters a token (`tokens.tokens_for_text`)."""
    return sum(tokens_for_text(item) if isinstance(item, str) else len(item) for item in embeddings_inputs(body))


# --- input -----------------------------------------------------------------------------------


def _validate_input(value: object) -> None:
    if value is _MISSING or value is None:
        raise _missing("input")
    if isinstance(value, str):
        if not value:
            raise _empty_string("input")
        return
    if not isinstance(value, list):
        raise _invalid_type("input", "a string, an array of strings, an array of integers or an array of "
                                     "arrays of integers", value)
    if not value:
        raise _error("input", "Invalid 'input': empty array. Expected an array with minimum length 1, "
                              "but got an empty array instead.", ErrorCode.EMPTY_ARRAY)
    if len(value) > MAX_INPUTS:
        raise _error("input", f"Invalid 'input': array too long. Expected an array with maximum length "
                              f"{MAX_INPUTS}, but got an array with length {len(value)} instead.",
                     ErrorCode.ARRAY_ABOVE_MAX_LENGTH)
    first = value[0]
    # One kind per array, decided by its first item: OpenAI does not mix texts and tokens.
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid_type(f"input[{i}]", "a string (every item of an array of strings)", item)
            if not item:
                raise _empty_string(f"input[{i}]")
    elif _is_int(first):
        _validate_tokens(value, "input")
    elif isinstance(first, list):
        for i, item in enumerate(value):
            if not isinstance(item, list):
                raise _invalid_type(f"input[{i}]", "an array of integers (every item of an array of token "
                                                   "arrays)", item)
            if not item:
                raise _error(f"input[{i}]", f"Invalid 'input[{i}]': empty array. Expected an array with minimum "
                                            "length 1, but got an empty array instead.", ErrorCode.EMPTY_ARRAY)
            _validate_tokens(item, f"input[{i}]")
    else:
        raise _invalid_type("input[0]", "a string, an integer or an array of integers", first)


def _validate_tokens(tokens: list, path: str) -> None:
    for j, token in enumerate(tokens):
        if not _is_int(token):
            raise _invalid_type(f"{path}[{j}]", "an integer (a token id)", token)
        if token < 0:
            raise _error(f"{path}[{j}]", f"Invalid '{path}[{j}]': integer below minimum value. Expected a "
                                         f"token id >= 0, but got {token} instead.", ErrorCode.INTEGER_BELOW_MIN_VALUE)


def _empty_string(param: str) -> GatewayError:
    return _error(param, f"Invalid '{param}': empty string. Every input to embed must be a non-empty string.",
                  ErrorCode.EMPTY_STRING)
