"""The import rules that keep the layers apart (DESIGN.md, STYLE.md).

Besides the layers: no import cycles between the modules of relaybus (an import inside a
function or under ``TYPE_CHECKING`` counts too: it only hides the cycle), and no module
imports another package's private names (``_name``, or a name inside a ``_module``). A
private name is visible in the package that defines it and in that package's subpackages;
the core modules directly in ``relaybus`` share theirs only with each other.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "relaybus"
CORE = {"errors", "target", "url", "message", "serializer", "executor", "eager", "conversion",
        "telemetry", "threadsafe", "middleware", "workers"}


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


@pytest.mark.parametrize("package", ["rpc", "notify", "delivery", "transport", "bus",
                                     "lifecycle", "cli",
                                     "sync", "gateway", "contracts"])
def test_nothing_above_reaches_into_drivers(package: str) -> None:
    for path in _modules(package):
        for name in _imports(path):
            assert not name.startswith("relaybus.drivers"), f"{path} imports {name}"


# -- the module graph -----------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _package_of(module: str) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to itself)."""
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _imported_names(module: str) -> Iterator[tuple[int, str]]:
    """Each relaybus name ``module`` imports, absolute and dotted, with its line."""
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(module).split(".")
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _edges(module: str) -> set[str]:
    """The relaybus modules ``module`` imports (``from a import b``: the module a.b if any)."""
    found = set()
    for _, name in _imported_names(module):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


# Cycles known and owned by another piece of work: each entry names the owner, and goes
# when that work lands. Nothing else may be added here.
ALLOWED_CYCLES: list[tuple[str, ...]] = []


def test_no_import_cycles() -> None:
    graph = {module: _edges(module) for module in MODULES}
    cycles = [cycle for cycle in _cycles(graph) if tuple(cycle) not in ALLOWED_CYCLES]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_cycles() -> None:
    # As cli.demo and cli.firehose were (each imported the other inside a function).
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    # The graph is read from the tree: cli.main imports every command module.
    assert _edges("relaybus.cli.main") >= {"relaybus.cli.demo", "relaybus.cli.firehose"}


# -- private names --------------------------------------------------------------------------

def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _crosses_a_package(importer: str, name: str) -> bool:
    """Whether module ``importer`` importing ``name`` reaches another package's private name."""
    here = _package_of(importer)
    parts = name.split(".")
    for position, part in enumerate(parts):
        if _is_private(part):
            parent = ".".join(parts[:position])
            owner = _package_of(parent) if parent in MODULES else parent
            if owner == "relaybus":  # the core modules: each subpackage is another package
                return here != owner
            return here != owner and not here.startswith(owner + ".")
    return False


def _private_imports_across_packages(module: str) -> Iterator[str]:
    for line, name in _imported_names(module):
        if name.startswith("relaybus.") and _crosses_a_package(module, name):
            yield f"{MODULES[module].relative_to(SRC)}:{line} imports {name}"


def test_the_private_name_check_knows_whose_names_they_are() -> None:
    # Another package's private function, or anything in its private module: refused.
    assert _crosses_a_package("relaybus.cli.demo", "relaybus.transport.registry._EXTRAS")
    assert _crosses_a_package("relaybus.gateway.web", "relaybus.rpc._helpers.anything")
    assert _crosses_a_package("relaybus.drivers.memory.driver", "relaybus.message._private")
    # Its own package's private names, and its ancestors': allowed; public names too.
    assert not _crosses_a_package("relaybus.cli.demo", "relaybus.cli.firehose._split")
    assert not _crosses_a_package("relaybus.drivers.rabbit.amqp.channel",
                                  "relaybus.drivers.rabbit._shared")
    assert not _crosses_a_package("relaybus.cli.demo", "relaybus.cli.demo_services.HOSTS")
    assert not _crosses_a_package("relaybus.cli.main", "relaybus.__version__")


# Imports of another package's private names owned by another piece of work, each with
# its owner; they go when that work lands.
ALLOWED_PRIVATE_IMPORTS: set[str] = set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_imported_across_packages(module: str) -> None:
    found = set(_private_imports_across_packages(module)) - ALLOWED_PRIVATE_IMPORTS
    assert not found, f"private names of another package: {sorted(found)}"
