"""The apps import each other in one direction only (issue 13):

    core <- catalog <- orgs <- billing <- ai_proxy <- dashboard <- gateway_site

A module may import from its own app and from the apps to its left, never to its right. Every
import counts: at the top of a module, inside a function, under TYPE_CHECKING. Migrations are
left out (they name other apps' migrations as dependencies, which is how Django orders them).
Where a lower app needs something of a higher one, the higher one registers it at start-up (see
core.audit, core.deferred, orgs.selectors.key_budget_rules_register).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYERS = ("core", "catalog", "orgs", "billing", "ai_proxy", "dashboard", "gateway_site")
ROOT = Path(__file__).resolve().parent.parent


def _modules(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" not in path.relative_to(ROOT).parts:
            yield path


def _imported_apps(path: Path):
    """(line, imported module) for every import of a project app in this file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue  # relative imports stay inside the app
        for name in names:
            if name.split(".")[0] in LAYERS:
                yield node.lineno, name


def _violations(app: str) -> list[str]:
    allowed = set(LAYERS[: LAYERS.index(app) + 1])
    found = []
    for path in _modules(app):
        for line, name in _imported_apps(path):
            if name.split(".")[0] not in allowed:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return found


@pytest.mark.parametrize("app", LAYERS)
def test_it_imports_only_from_its_own_app_and_the_layers_below(app):
    found = _violations(app)
    assert not found, (
        f"{app} may import only from {', '.join(LAYERS[: LAYERS.index(app) + 1])}; "
        "these imports point the other way:\n  " + "\n  ".join(found)
    )


def test_it_knows_every_app():
    """A new app must be placed in the layering before it is imported anywhere."""
    from django.conf import settings

    apps = {name for name in settings.INSTALLED_APPS if (ROOT / name / "apps.py").exists()}
    assert apps <= set(LAYERS), f"apps missing from LAYERS: {sorted(apps - set(LAYERS))}"


def test_it_sees_function_level_imports(tmp_path):
    # The checker itself: an import inside a function is found like a top-level one.
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from billing.models import Budget\n")
    assert list(_imported_apps(module)) == [(4, "billing.models")]
