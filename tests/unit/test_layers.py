"""The import rules that keep the layers apart (DESIGN.md, STYLE.md)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "relaybus"
CORE = {"errors", "target", "url", "message", "serializer", "executor", "conversion",
        "telemetry"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "relaybus":  # from relaybus import telemetry, rpc, ...
                found.update(f"relaybus.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("relaybus")}


def _modules(package: str) -> list[Path]:
    base = SRC / package
    return sorted(base.rglob("*.py")) if base.is_dir() else [SRC / f"{package}.py"]


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_imports_only_core(module: str) -> None:
    for name in _imports(SRC / f"{module}.py"):
        assert name.split(".")[1] in CORE, f"{module} imports {name}"


@pytest.mark.parametrize("path", _modules("drivers"), ids=lambda p: p.relative_to(SRC).as_posix())
def test_drivers_never_import_the_api_layer_or_each_other(path: Path) -> None:
    own = path.relative_to(SRC / "drivers").parts[0]
    for name in _imports(path):
        parts = name.split(".")
        assert parts[1] not in {"rpc", "notify", "bus", "cli", "gateway", "contracts",
                                "sync", "testing"}, f"{path.name} imports {name}"
        if parts[1] == "drivers" and len(parts) > 2:
            assert parts[2] == own, f"{path} imports the {parts[2]} driver"


@pytest.mark.parametrize("package", ["rpc", "notify", "transport", "bus", "lifecycle", "cli",
                                     "sync", "gateway", "contracts"])
def test_nothing_above_reaches_into_drivers(package: str) -> None:
    for path in _modules(package):
        for name in _imports(path):
            assert not name.startswith("relaybus.drivers"), f"{path} imports {name}"
