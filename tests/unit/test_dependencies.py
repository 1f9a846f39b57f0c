"""Every third-party package the product imports is declared in pyproject.toml, not borrowed from
another package's dependencies (Flask brings Jinja2 and Werkzeug today; nothing promises it will)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Set

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "src"

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 10),
    reason="needs sys.stdlib_module_names and packages_distributions (3.10+); the declarations do not depend on the Python",
)


def imported_top_level_names() -> Set[str]:
    names: Set[str] = set()
    for path in PRODUCT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> Set[str]:
    from importlib import metadata

    requirements = metadata.requires("warehouse-invoice-service") or []
    runtime = [requirement for requirement in requirements if "extra ==" not in requirement]
    return {normalised(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in runtime}


def test_every_imported_third_party_package_is_a_declared_dependency():
    from importlib import metadata

    installed_by = metadata.packages_distributions()
    declared = declared_distributions()
    third_party = {
        name
        for name in imported_top_level_names()
        if name not in sys.stdlib_module_names and not name.startswith("warehouse_")
    }
    # A module no installed distribution provides here (backports.zoneinfo below 3.9) cannot be borrowed.
    undeclared = sorted(
        name
        for name in third_party
        if name in installed_by
        and not {normalised(dist) for dist in installed_by[name]} & declared
        # A namespace package (backports) is declared by one of its distributions (backports.zoneinfo),
        # whatever else on the path provides the namespace (setuptools' vendored backports.tarfile).
        and not any(dist.startswith(normalised(name) + "-") for dist in declared)
    )
    assert undeclared == []
