"""Every code block of the documentation runs, so the docs cannot drift from the code.

Each ```` ```python ```` block of README.md and docs/**/*.md runs as a script in a process of
its own, from the repository root (so ``examples`` imports) with no ``RELAYBUS_*`` variable
(so the default URL is ``memory://``), and must exit 0. Blocks that name ``rabbit://``,
``nats://`` or ``mqtt://`` run against the shared brokers (marked ``broker``). An HTML
comment on the line before a block changes that:

- ``<!-- docs-test: continue -->``: run after the page's previous blocks, as one script
  (a page that builds an example step by step);
- ``<!-- docs-test: until TEXT -->``: a program that runs until stopped: once it prints TEXT
  it gets SIGINT and must then exit 0 (a server that keeps running, shown as written);
- ``<!-- docs-test: elsewhere PATH -->``: a test module another test runs (PATH, which must
  read this page);
- ``<!-- docs-test: skip REASON -->``: a fragment that cannot run alone (say why).

Shell blocks (``sh``, ``bash``, ``console``) are checked, not run: every ``relaybus``
command they show must exist with the options it is given, and every
``python -m examples.X`` must name a module that exists. TOML blocks must be files relaybus
reads: a ``relaybus.toml`` or a firehose tokens file.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

from relaybus.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*$")
_MARK = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")
_SHELL = {"sh", "bash", "console", "shell"}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    mark: str = ""
    arg: str = ""
    before: list[str] = field(default_factory=list)  # earlier blocks it continues

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, with the mark on the line before each."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        indent = len(fence["indent"])
        start = index
        index += 1
        body = []
        while index < len(lines) and not lines[index].strip().startswith("```"):
            body.append(lines[index][indent:])
            index += 1
        index += 1
        mark = _MARK.match(lines[start - 1]) if start else None
        block = Block(page, start + 1, fence["lang"].lower(), "\n".join(body) + "\n",
                      mark["kind"] if mark else "", mark["arg"] if mark else "")
        if block.mark == "continue":
            previous = [b for b in found if b.lang == "python"]
            assert previous, f"{block.name}: 'continue' with no python block before it"
            block.before = [*previous[-1].before, previous[-1].code]
        found.append(block)
    return found


ALL = [block for page in PAGES for block in blocks(page)]
PYTHON = [b for b in ALL if b.lang in ("python", "py")]
SHELL = [b for b in ALL if b.lang in _SHELL]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _params(items: list[Block]) -> list[object]:
    params: list[object] = []
    for block in items:
        marks = []
        if re.search(r"\b(rabbit|nats|mqtt)://", "".join([*block.before, block.code])):
            marks.append(pytest.mark.broker)
        params.append(pytest.param(block, id=block.name, marks=marks))
    return params


def test_the_docs_have_code_to_run() -> None:
    assert len(PYTHON) >= 20 and len(SHELL) >= 10, (len(PYTHON), len(SHELL))
    for block in ALL:
        assert block.mark in ("", "continue", "until", "elsewhere", "skip"), \
            f"{block.name}: unknown docs-test mark {block.mark!r}"
        if block.mark == "skip":
            assert block.arg, f"{block.name}: a skipped block says why"


@pytest.mark.parametrize("block", _params(PYTHON))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.mark == "skip":
        return  # a fragment: test_the_docs_have_code_to_run holds it to a reason
    if block.mark == "elsewhere":
        runner = ROOT / block.arg
        assert runner.is_file(), f"{block.name}: {block.arg} does not exist"
        assert str(block.page.relative_to(ROOT)) in runner.read_text(), \
            f"{block.arg} does not read {block.page.relative_to(ROOT)}"
        return
    script = tmp_path / "block.py"
    script.write_text("\n".join([*block.before, block.code]))
    if block.mark == "until":
        _run_until(block, script)
        return
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stdout}\n{result.stderr}"


def _run_until(block: Block, script: Path) -> None:
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if block.arg in line:
                break
        assert any(block.arg in line for line in seen), \
            f"{block.name} never printed {block.arg!r}:\n{''.join(seen)}"
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
        assert process.returncode == 0, f"{block.name} after SIGINT:\n{''.join(seen)}{rest}"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _command(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command a `relaybus ...` line runs, its path and its remaining words."""
    command: click.Command = cli
    path = ["relaybus"]
    rest = list(words)
    while isinstance(command, click.Group):
        while rest and rest[0].startswith("-"):  # group options (--config FILE)
            rest = rest[2:] if "=" not in rest[0] else rest[1:]
        if not rest:
            break
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no command {' '.join([*path, rest[0]])}"
        path.append(rest.pop(0))
        command = sub
    return command, path, rest


def _options(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _shell_lines(code: str) -> list[str]:
    """Lines of a shell block, continuation lines joined and prompts stripped."""
    lines, current = [], ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return lines


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in SHELL])
def test_shell_block_commands_exist(block: Block) -> None:
    for line in _shell_lines(block.code):
        try:
            words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)
        except ValueError:
            continue  # not a command line (output shown in a shell block)
        for command_words in _split_commands(words):
            _check(block, command_words)


def _split_commands(words: list[str]) -> list[list[str]]:
    commands, current = [], []
    for word in words:
        if word in ("&&", "||", "|", ";", "&"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    return [c for c in commands if c]


def _check(block: Block, words: list[str]) -> None:
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]  # VAR=value before the command
    if not words:
        return
    program = Path(words[0]).name
    if program == "relaybus":
        try:
            command, path, rest = _command(words[1:])
        except AssertionError as exc:
            raise AssertionError(f"{block.name}: {exc}") from None
        known = _options(command)
        for word in rest:
            if word.startswith("--"):
                option = word.split("=", 1)[0]
                assert option in known, \
                    f"{block.name}: {' '.join(path)} has no option {option}"
    elif program.startswith("python") and words[1:3] and words[1] == "-m" \
            and words[2].startswith("examples."):
        module = ROOT / Path(*words[2].split("."))
        assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), \
            f"{block.name}: no module {words[2]}"


TOML = [b for b in ALL if b.lang == "toml"]


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in TOML])
def test_toml_block_is_a_file_relaybus_reads(block: Block, tmp_path: Path) -> None:
    """A relaybus.toml ([relaybus] table) or a firehose tokens file ([[token]]), read as
    relaybus reads them (environment variables the block names are set)."""
    import tomllib

    from relaybus.cli.settings import resolve
    from relaybus.gateway.auth import load_tokens_file

    data = tomllib.loads(block.code)
    path = tmp_path / "block.toml"
    path.write_text(block.code)
    if "relaybus" in data:
        resolve({}, config=str(path), environ={})
    else:
        assert "token" in data, f"{block.name}: neither a relaybus.toml nor a tokens file"
        environ = {e["token_env"]: "s3cret" for e in data["token"] if "token_env" in e}
        load_tokens_file(path, environ=environ)
