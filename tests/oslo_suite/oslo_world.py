"""The name ``oslo_messaging`` resolving to relaybus's drop-in, for oslo's own tests.

oslo.messaging's wheel ships its tests as ``oslo_messaging.tests.*``. Inside
:func:`drop_in_world`, ``import oslo_messaging`` (and every public submodule) gives
``relaybus.oslo_messaging``, while ``oslo_messaging.tests.*`` still loads oslo's own files
from the wheel, unchanged, except that the package ``oslo_messaging.tests`` itself is
empty: its ``__init__`` runs ``eventlet.monkey_patch()``, which would turn every thread of
the pytest process (relaybus's event loop thread and every other test's) green. The only
private oslo module those tests import,
``oslo_messaging._drivers.kafka_driver.kafka_options`` (its ``register_opts``, called
for every URL), is a stub that registers nothing: no kafka here. Any other private
module fails to import, loudly.

The swap is undone on leaving the block, because other test directories (tests/interop)
run the real oslo.messaging in the same process: whatever was imported under an
``oslo_messaging`` name inside the block is kept aside and put back next time.

With ``RELAYBUS_OSLO_SUITE_BASELINE=1`` nothing is swapped: the same tests run against the
real oslo.messaging, which is how the baseline column of docs/oslo-migration.md is made.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

BASELINE = os.environ.get("RELAYBUS_OSLO_SUITE_BASELINE") == "1"
NAME = "oslo_messaging"
FACADE = "relaybus.oslo_messaging"


def _is_oslo_name(name: str) -> bool:
    return name == NAME or name.startswith(NAME + ".")


def _wheel_dir() -> Path:
    spec = importlib.util.find_spec(NAME)
    assert spec is not None and spec.submodule_search_locations, "oslo.messaging missing"
    return Path(next(iter(spec.submodule_search_locations)))


def _kafka_stub() -> dict[str, types.ModuleType]:
    drivers = types.ModuleType(f"{NAME}._drivers")
    drivers.__path__ = []
    kafka = types.ModuleType(f"{NAME}._drivers.kafka_driver")
    kafka.__path__ = []
    options = types.ModuleType(f"{NAME}._drivers.kafka_driver.kafka_options")

    def register_opts(conf: object, url: object) -> None:
        """No kafka transport in relaybus: nothing to register."""

    options.register_opts = register_opts  # type: ignore[attr-defined]
    drivers.kafka_driver = kafka  # type: ignore[attr-defined]
    kafka.kafka_options = options  # type: ignore[attr-defined]
    return {m.__name__: m for m in (drivers, kafka, options)}


class _EmptyPackage(importlib.abc.Loader):
    """Loads a package without running its ``__init__``."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _WheelTestsFinder(importlib.abc.MetaPathFinder):
    """``oslo_messaging.tests*`` from the wheel; other unknown oslo names fail."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if not _is_oslo_name(fullname):
            return None
        parts = fullname.split(".")
        if parts[1:] == ["tests"]:
            # the package's __init__ only runs eventlet.monkey_patch(): not here
            spec = importlib.machinery.ModuleSpec(fullname, _EmptyPackage(), is_package=True)
            spec.submodule_search_locations = [str(self.wheel / "tests")]
            return spec
        if parts[1:2] == ["tests"]:
            base = self.wheel.joinpath(*parts[1:])
            if base.is_dir():
                return importlib.util.spec_from_file_location(
                    fullname, base / "__init__.py", submodule_search_locations=[str(base)])
            return importlib.util.spec_from_file_location(fullname, f"{base}.py")
        raise ModuleNotFoundError(f"{fullname} is an oslo.messaging internal the drop-in "
                                  f"does not provide", name=fullname)


_world: dict[str, types.ModuleType] = {}


def _populate() -> None:
    facade = importlib.import_module(FACADE)
    _world[NAME] = facade
    for info in pkgutil.walk_packages(facade.__path__, FACADE + "."):
        module = importlib.import_module(info.name)
        _world[NAME + info.name[len(FACADE):]] = module
    _world.update(_kafka_stub())


@contextlib.contextmanager
def drop_in_world() -> Iterator[None]:
    """Within the block, ``oslo_messaging`` is relaybus's drop-in (see the module doc)."""
    if BASELINE:
        yield
        return
    if not _world:
        _populate()
    wheel = _wheel_dir()
    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if _is_oslo_name(k)]}
    sys.modules.update(_world)
    finder = _WheelTestsFinder(wheel)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if _is_oslo_name(k)]:
            _world[k] = sys.modules.pop(k)
        sys.modules.update(saved)
