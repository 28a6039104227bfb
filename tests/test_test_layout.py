"""The suite's own layout: test modules share helpers through tests/helpers.py and fixtures through
tests/fixtures.py, never by importing another test module (which also pulls in its fixtures and
runs its autouse ones where they were not meant to)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def test_no_module_of_the_suite_imports_a_test_module():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.split(".")[-1].startswith("test_") or ".test_" in name:
                    offenders.append(f"{path.relative_to(TESTS.parent)}:{node.lineno} imports {name}")
    assert not offenders, "move what is shared into tests/helpers.py or tests/fixtures.py:\n" + "\n".join(offenders)
