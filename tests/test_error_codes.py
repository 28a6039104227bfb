"""Error codes are core.errors.ErrorCode members, never string literals, and clients see the
same strings as before the enum (WIRE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson

from core.errors import ErrorCode, GatewayError

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "catalog", "orgs", "billing", "ai_proxy", "dashboard", "gateway_site")


def test_it_has_no_code_literals_left():
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant) \
                        and isinstance(node.value.value, str):
                    found.append(f"{path.relative_to(ROOT)}:{node.value.lineno} code={node.value.value!r}")
    assert not found, "use ErrorCode members:\n  " + "\n  ".join(found)


def test_it_renders_the_enum_as_its_plain_string():
    body = GatewayError(401, "Invalid API key.", code=ErrorCode.INVALID_API_KEY).body("openai", "req_1")
    assert orjson.loads(orjson.dumps(body))["error"]["code"] == "invalid_api_key"
    assert len({c.value for c in ErrorCode}) == len(ErrorCode)
