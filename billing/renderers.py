"""JSON whose numbers carry the exact Decimal: money must not pass through a float on the way out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from rest_framework.renderers import BaseRenderer


def decimal_json(value: Any) -> str:
    if isinstance(value, Decimal):
        # Plain notation, trailing zeros dropped: 0.0000123 not 1.23E-5, 12 not 12.0000000000.
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{decimal_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(decimal_json(v) for v in value) + "]"
    return json.dumps(value)


class ExactDecimalJSONRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None) -> bytes:
        if data is None:
            return b""
        return decimal_json(data).encode()
