"""What the installed package promises its users: type information and one version."""

import importlib.metadata
from pathlib import Path

import relaybus


def test_the_package_ships_py_typed() -> None:
    # PEP 561: without the marker, type checkers ignore relaybus's annotations.
    assert (Path(relaybus.__file__).parent / "py.typed").is_file()


def test_the_installed_version_is_relaybus_version() -> None:
    # pyproject.toml reads the version from relaybus/__init__.py (hatch's dynamic version),
    # so the metadata pip installed and the module's attribute are the same string.
    assert importlib.metadata.version("relaybus") == relaybus.__version__
