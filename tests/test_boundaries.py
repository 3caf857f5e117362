"""Import boundaries (DESIGN.md, "Repository layout") and error mapping at the edges."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import adapters.errors
import gateway.errors
import keys.errors
import signaalpoort

ROOT = Path(__file__).resolve().parents[1]
CRYPTO = ("cryptography", "joserfc")


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["gateway", "adapters"])
def test_only_keys_imports_cryptography_or_joserfc(package: str) -> None:
    offenders = {f: n & set(CRYPTO) for f, n in _imports(package).items() if n & set(CRYPTO)}
    assert offenders == {}


def test_the_command_line_module_imports_no_crypto_library_either() -> None:
    names = {
        node.module.split(".")[0]
        for node in ast.walk(ast.parse((ROOT / "signaalpoort.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not names & set(CRYPTO)


@pytest.mark.parametrize(("package", "other"), [("gateway", "adapters"), ("adapters", "gateway")])
def test_gateway_and_adapters_never_import_each_other(package: str, other: str) -> None:
    offenders = [f for f, names in _imports(package).items() if other in names]
    assert offenders == []


def test_keys_imports_neither_side() -> None:
    offenders = [f for f, n in _imports("keys").items() if n & {"gateway", "adapters"}]
    assert offenders == []


def _error_classes() -> list[type[Exception]]:
    classes: list[type[Exception]] = []
    for module in (keys.errors, gateway.errors, adapters.errors):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Exception) and cls.__module__ == module.__name__:
                classes.append(cls)
    return classes


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_has_a_stable_code_mapped_to_an_exit_code(cls: type[Exception]) -> None:
    code = getattr(cls, "code", None)
    assert isinstance(code, str) and code
    assert code in signaalpoort.EXIT_CODES


def test_error_codes_are_unique_across_the_tree() -> None:
    codes = [c.code for c in _error_classes()]  # type: ignore[attr-defined]
    assert len(codes) == len(set(codes))
