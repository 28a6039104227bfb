"""JSON whose numbers carry the exact Decimal: money must not pass through a float on the way out."""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

from rest_framework.renderers import BaseRenderer


def decimal_text(value: Decimal) -> str:
    # Plain notation, trailing zeros dropped: 0.0000123 not 1.23E-5, 12 not 12.0000000000.
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def decimal_json(value: Any) -> str:
    """Compact JSON with each Decimal written as its exact number. The C encoder does the work
    (a page of the staff usage API holds tens of thousands of values): a Decimal goes out as a
    string tagged with a nonce no other string can contain, and the quotes around it come off."""
    tag = "dec" + secrets.token_hex(8) + ":"

    def tagged(obj: Any) -> str:
        if isinstance(obj, Decimal):
            return tag + decimal_text(obj)
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, separators=(",", ":"), default=tagged)
    return re.sub(f'"{tag}([-0-9.]+)"', r"\1", text)


class ExactDecimalJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None) -> bytes:
        if data is None:
            return b""
        return decimal_json(data).encode()
