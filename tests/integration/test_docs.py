"""Every command in README.md and docs/ works as written on a fresh clone (issue 12).

How a block is checked is written next to it. Every fenced block whose language
is ``sh``, ``bash``, ``console`` or ``shell`` must have, on the nearest non-blank
line above its opening fence, an HTML comment::

    <!-- check: MODE -->

with MODE one of

``run``
    Run the block in a fresh clone (``bash -e -o pipefail``); it must exit 0.
``serve PORT [PORT ...]``
    Start the block in a fresh clone, wait until every PORT answers HTTP on
    127.0.0.1 (a 5xx answer fails), run its ``while-serving`` blocks, check that
    its output holds no traceback, then stop it (SIGTERM to its process group).
``while-serving``
    Run (exit 0) in the clone of the nearest ``serve`` block above it in the same
    file, while that block's servers are up. ``serve`` blocks of identical text
    share one server and all their ``while-serving`` blocks.
``extras``
    Not run: its ``pip install`` lines may name only this package and extras that
    pyproject.toml defines (every ``pip install`` line in any block is held to that).
``skip: REASON``
    Not run, for the REASON given (the whole suite, the benchmark, tox, apt-get:
    the test runs inside the suite and installs nothing).

``run`` and ``while-serving`` may end in ``; expect: TEXT``: TEXT must appear in
the block's standard output. In a ``console`` block only lines that start with
``$ `` are commands (and the lines they continue with a trailing backslash); in
the other languages every line is.

Every ``python`` block must compile (top-level ``await`` allowed), ``json``
blocks must parse, and the names documented ``from channels_bearer... import``
must exist. A ``python`` block may be marked ``<!-- check: project PATH -->``
(the block is the file PATH of a new project) or ``project PATH append`` (it is
appended to PATH): the blocks of one markdown file make one project, created with
``django-admin startproject NAME .`` (NAME: the directory of the settings.py
among the paths) and ``manage.py startapp APP`` for every other top directory.
The project must pass ``manage.py check`` without a warning, migrate, make a DRF
token with ``manage.py bearer_token``, and accept a socket with that token.

A fresh clone is ``git clone`` of this repository with the working tree's
uncommitted changes to tracked files copied in (untracked files are not part of
a clone), and ``.venv`` a symlink to this repository's ``.venv``: dev.py finds it
up to date (its stamp is pyproject.toml's hash) and installs nothing;
``CHANNELS_BEARER_NO_INSTALL=1`` and ``PIP_NO_INDEX=1`` make sure of it. After the
commands ran, ``git status`` in the clone must show nothing new: whatever the
documented commands create must be git-ignored.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import IN_CI, ROOT, require_program

pytestmark = pytest.mark.server

SHELL_LANGUAGES = ("sh", "bash", "console", "shell")
CHECK_COMMENT = re.compile(r"^<!--\s*check:\s*(?P<check>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`]*)")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
STAMP = ROOT / ".venv" / ".channels-bearer-installed"
#: Seconds a server may take to answer its first request (a first dev.py run migrates).
SERVE_TIMEOUT = 60
COMMAND_TIMEOUT = 120


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").rglob("*.md"))]


# -- the blocks and their checks ------------------------------------------------


@dataclass(frozen=True)
class Check:
    mode: str
    ports: tuple[int, ...] = ()
    expect: str | None = None
    path: str = ""
    append: bool = False


def parse_check(raw: str) -> Check:
    """``run``, ``serve 8000 9000``, ``while-serving; expect: TEXT``, ``skip: why``, ``project a/b.py append``."""
    if raw.startswith("skip"):
        reason = raw[len("skip") :].lstrip()
        if not reason.startswith(":") or not reason[1:].strip():
            raise ValueError("write the reason: <!-- check: skip: REASON -->")
        return Check("skip")
    head, _, tail = raw.partition(";")
    expect = None
    if tail:
        key, _, text = tail.strip().partition(":")
        if key.strip() != "expect" or not text.strip():
            raise ValueError(f"after ';' only 'expect: TEXT' may follow, not {tail.strip()!r}")
        expect = text.strip()
    words = head.split()
    mode, args = (words[0], words[1:]) if words else ("", [])
    if expect is not None and mode not in ("run", "while-serving"):
        raise ValueError(f"'expect' applies to run and while-serving, not {mode!r}")
    if mode in ("run", "while-serving", "extras") and not args:
        return Check(mode, expect=expect)
    if mode == "serve" and args and all(arg.isdigit() for arg in args):
        return Check(mode, ports=tuple(int(arg) for arg in args))
    if mode == "project" and (len(args) == 1 or (len(args) == 2 and args[1] == "append")):
        return Check(mode, path=args[0], append=len(args) == 2)
    raise ValueError(f"unknown check {raw!r}")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    lang: str
    text: str
    check: str | None

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL_LANGUAGES

    def parsed(self) -> Check:
        if self.check is None:
            raise ValueError("no <!-- check: ... --> comment on the line before the block")
        return parse_check(self.check)

    def script(self) -> str:
        """The commands, as bash will run them."""
        if self.lang != "console":
            return self.text
        commands: list[str] = []
        continued = False
        for line in self.text.splitlines():
            if line.startswith("$ ") or continued:
                command = line[2:] if line.startswith("$ ") and not continued else line
                commands.append(command)
                continued = command.endswith("\\")
        return "\n".join(commands) + "\n"


def parse_blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, lang = len(opening["indent"]), opening["fence"], opening["lang"].lower()
        above = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        comment = CHECK_COMMENT.match(above)
        body: list[str] = []
        index += 1
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while index < len(lines) and not closing.match(lines[index]):
            body.append(lines[index][indent:] if lines[index][:indent].strip() == "" else lines[index])
            index += 1
        yield Block(path, index - len(body), lang, "\n".join(body) + "\n", comment["check"] if comment else None)
        index += 1


BLOCKS = [block for path in markdown_files() for block in parse_blocks(path)]
SHELL_BLOCKS = [block for block in BLOCKS if block.is_shell]
PYTHON_BLOCKS = [block for block in BLOCKS if block.lang == "python"]


@dataclass
class ServeGroup:
    """One server (a ``serve`` block, or several of identical text) and what runs while it is up."""

    block: Block
    ports: tuple[int, ...]
    also_at: list[str] = field(default_factory=list)
    while_serving: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.block.where} serve {' '.join(map(str, self.ports))}"


def plan() -> tuple[list[list[Block]], list[ServeGroup]]:
    """The run blocks (identical ones once) and the serve groups; blocks with a bad check are left out."""
    runs: dict[tuple[str, str | None], list[Block]] = {}
    groups: dict[tuple[str, tuple[int, ...]], ServeGroup] = {}
    for path in markdown_files():
        current: ServeGroup | None = None
        for block in (block for block in SHELL_BLOCKS if block.file == path):
            try:
                check = block.parsed()
            except ValueError:
                continue
            if check.mode == "run":
                runs.setdefault((block.text, check.expect), []).append(block)
            elif check.mode == "serve":
                key = (block.text, check.ports)
                if key in groups:
                    groups[key].also_at.append(block.where)
                current = groups.setdefault(key, ServeGroup(block, check.ports))
            elif check.mode == "while-serving" and current is not None:
                current.while_serving.append(block)
    return list(runs.values()), list(groups.values())


RUNS, SERVE_GROUPS = plan()


# -- what every block must say --------------------------------------------------


def test_every_shell_block_says_how_it_is_checked() -> None:
    problems = []
    for path in markdown_files():
        serve_seen = False
        for block in (block for block in SHELL_BLOCKS if block.file == path):
            try:
                check = block.parsed()
            except ValueError as exc:
                problems.append(f"{block.where}: {exc}")
                continue
            if check.mode == "project":
                problems.append(f"{block.where}: 'project' marks python blocks, not {block.lang}")
            serve_seen = serve_seen or check.mode == "serve"
            if check.mode == "while-serving" and not serve_seen:
                problems.append(f"{block.where}: 'while-serving' with no 'serve' block above it in the file")
    assert not problems, "\n".join(problems)


def test_every_fence_names_its_language() -> None:
    # A bare fence would let a command slip past the shell-block rule above.
    bare = [block.where for block in BLOCKS if not block.lang]
    assert not bare, f"fenced blocks without a language (write sh, python, text, ...): {bare}"


def test_the_suite_never_runs_itself_or_installs() -> None:
    forbidden = re.compile(r"python3 dev\.py (test|bench)\b|\bbash \.ci/run\b|\bpip install\b|\btox\b|apt-get")
    offending = []
    for block in SHELL_BLOCKS:
        try:
            mode = block.parsed().mode
        except ValueError:
            continue  # named by test_every_shell_block_says_how_it_is_checked
        if mode in ("run", "serve", "while-serving") and forbidden.search(block.script()):
            offending.append(block.where)
    assert not offending, f"these blocks must be 'skip' (or 'extras'), never run from the suite: {offending}"


def test_python_blocks_compile() -> None:
    problems = []
    for block in PYTHON_BLOCKS:
        try:
            compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError as exc:
            problems.append(f"{block.where}: line {exc.lineno}: {exc.msg}")
        if block.check is not None:
            try:
                if parse_check(block.check).mode != "project":
                    problems.append(f"{block.where}: a python block takes only 'project PATH [append]'")
            except ValueError as exc:
                problems.append(f"{block.where}: {exc}")
    assert not problems, "\n".join(problems)


def test_json_blocks_parse() -> None:
    problems = []
    for block in (block for block in BLOCKS if block.lang == "json"):
        try:
            json.loads(block.text)
        except ValueError as exc:
            problems.append(f"{block.where}: {exc}")
    assert not problems, "\n".join(problems)


def test_documented_imports_exist() -> None:
    """``from channels_bearer.x import y`` in the docs: x imports and has y (pytest-django set Django up)."""
    missing = []
    for block in PYTHON_BLOCKS:
        tree = compile(block.text, block.where, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "channels_bearer":
                try:
                    module = importlib.import_module(node.module or "")
                except ImportError as exc:
                    missing.append(f"{block.where}: {node.module} ({exc})")
                    continue
                missing += [f"{block.where}: {node.module}.{a.name}" for a in node.names if not hasattr(module, a.name)]
            elif isinstance(node, ast.Import):
                for alias in (a for a in node.names if a.name.split(".")[0] == "channels_bearer"):
                    try:
                        importlib.import_module(alias.name)
                    except ImportError as exc:
                        missing.append(f"{block.where}: {alias.name} ({exc})")
    assert not missing, "documented names that do not exist:\n" + "\n".join(missing)


# -- install lines and the README's facts ---------------------------------------

REQUIREMENT = re.compile(r"^(?P<name>\.|[A-Za-z0-9][A-Za-z0-9._-]*)(\[(?P<extras>[^\]]*)\])?(\s*@\s*.+)?$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_requirements(script: str) -> Iterator[tuple[str, str]]:
    """(line, requirement) for every requirement a ``pip install`` line names."""
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if "pip" not in words or "install" not in words:
            continue
        args = words[words.index("install") + 1 :]
        skip_next = False
        for arg in args:
            if skip_next:
                skip_next = False
            elif arg in ("-r", "-c", "--requirement", "--constraint"):
                skip_next = True
            elif not arg.startswith("-"):
                yield line, arg


def test_pip_install_lines_name_real_extras() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    own_name = normalized(PYPROJECT["project"]["name"])
    problems = []
    for block in SHELL_BLOCKS:
        found = list(pip_requirements(block.script()))
        if block.check == "extras" and not found:
            problems.append(f"{block.where}: an 'extras' block without a pip install line")
        for line, requirement in found:
            match = REQUIREMENT.match(requirement)
            if match is None:
                problems.append(f"{block.where}: cannot read the requirement {requirement!r} in {line!r}")
                continue
            if match["name"] != "." and normalized(match["name"]) != own_name:
                problems.append(f"{block.where}: {line!r} installs {match['name']!r}, not {own_name!r}")
            for extra in filter(None, (e.strip() for e in (match["extras"] or "").split(","))):
                if extra not in extras:
                    problems.append(f"{block.where}: extra {extra!r} is not in pyproject.toml ({sorted(extras)})")
    # Extras written in prose: ".[simplejwt,redis]", channels-bearer[jwks].
    for path in markdown_files():
        for match in re.finditer(r"(?:\"\.|channels-bearer)\[([a-z0-9_,-]+)\]", path.read_text()):
            unknown = set(match[1].split(",")) - extras
            if unknown:
                problems.append(f"{path.relative_to(ROOT)}: {match[0]!r} names unknown extras {sorted(unknown)}")
    assert not problems, "\n".join(problems)


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match[1]


def test_readme_names_every_extra() -> None:
    install = readme_section("Install")
    missing = [extra for extra in PYPROJECT["project"]["optional-dependencies"] if f"`{extra}`" not in install]
    assert not missing, f"README.md's Install section does not say what these extras are for: {missing}"


def test_readme_supported_versions_match_pyproject() -> None:
    line = readme_section("Supported versions")
    classifiers = PYPROJECT["project"]["classifiers"]
    pythons = [
        c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    djangos = [c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r"Framework :: Django :: [\d.]+", c)]
    channels = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("channels"))
    channels_floor = re.search(r">=([\d.]+)", channels)
    assert pythons and djangos and channels_floor
    missing = [f"Python {v}" for v in pythons if v not in line] + [f"Django {v}" for v in djangos if v not in line]
    if f"Channels {channels_floor[1]}" not in line:
        missing.append(f"Channels {channels_floor[1]}")
    assert not missing, f"README.md's supported versions miss what pyproject.toml declares: {missing}"


def github_slug(heading: str) -> str:
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m[1] or "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {github_slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def test_readme_links_resolve() -> None:
    """Relative links in README.md (on a git host: into docs/) point at files and headings that exist."""
    text = (ROOT / "README.md").read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = ROOT / file if file else ROOT / "README.md"
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
            broken.append(target)
    assert not broken, f"README.md links to what does not exist: {broken}"


# -- fresh clones ---------------------------------------------------------------


def user_environment() -> dict[str, str]:
    """The environment of someone at a shell: none of the suite's settings, and no installing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "DJANGO_", "PIP_", "BEARER_"))
        and k not in ("PYTHONPATH", "REDIS_URL", "VIRTUAL_ENV")
    }
    env.update(CHANNELS_BEARER_NO_INSTALL="1", PIP_NO_INDEX="1", PYTHONUNBUFFERED="1")
    return env


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=60).stdout


@dataclass
class Clone:
    path: Path
    status: str  # ``git status --porcelain`` before any documented command ran

    def left_behind(self) -> list[str]:
        before = set(self.status.splitlines())
        return [line for line in git("status", "--porcelain", cwd=self.path).splitlines() if line not in before]


@pytest.fixture
def clone(tmp_path: Path) -> Clone:
    require_program("git")
    require_program("bash")
    if not (ROOT / ".git").exists():
        pytest.fail("the documentation test needs a git checkout of channels-bearer")
    venv_python = ROOT / ".venv" / "bin" / "python"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not venv_python.exists() or not STAMP.exists() or STAMP.read_text() != wanted:
        pytest.fail(".venv is missing or older than pyproject.toml: run python3 dev.py test once (it installs) first")
    dest = tmp_path / "channels-bearer"
    git("clone", "--quiet", str(ROOT), str(dest))
    # The working tree's uncommitted changes to tracked files, so the test checks what is about to be committed.
    changes = git("diff", "HEAD", "--name-status", "--no-renames", "-z").split("\0")
    for status, name in zip(changes[0::2], changes[1::2]):
        target = dest / name
        if status == "D" or not (ROOT / name).exists():
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
    (dest / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    return Clone(dest, git("status", "--porcelain", cwd=dest))


def bash(script: str) -> list[str]:
    return ["bash", "-e", "-o", "pipefail", "-c", script]


def require_programs_of(*blocks: Block) -> None:
    if any(re.search(r"(^|[\s$(])curl\s", block.script()) for block in blocks):
        require_program("curl")


def run_block(block: Block, cwd: Path) -> None:
    check = block.parsed()
    result = subprocess.run(
        bash(block.script()),
        cwd=cwd,
        env=user_environment(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,  # the status is asserted below, with the output
    )
    output = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, f"{block.where} exited with {result.returncode}:\n{block.script()}\n{output}"
    if check.expect is not None:
        assert check.expect in result.stdout, f"{block.where}: {check.expect!r} not in its output\n{output}"


def assert_nothing_left_behind(clone: Clone, where: str) -> None:
    left = clone.left_behind()
    assert not left, f"after {where}, git status shows files that .gitignore should cover: {left}"


@pytest.mark.parametrize("blocks", RUNS, ids=[blocks[0].where for blocks in RUNS])
def test_run_blocks(blocks: list[Block], clone: Clone) -> None:
    require_programs_of(*blocks)
    run_block(blocks[0], clone.path)
    assert_nothing_left_behind(clone, blocks[0].where)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_http(port: int, process: subprocess.Popen[bytes], log: Path, where: str) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{where} exited with {process.returncode} before port {port} answered:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as answer:
            status = answer.code
        except OSError:
            time.sleep(0.1)
            continue
        assert status < 500, f"{where}: http://127.0.0.1:{port}/ answered {status}:\n{log.read_text()}"
        return
    pytest.fail(f"{where}: nothing answered HTTP on port {port} within {SERVE_TIMEOUT} s:\n{log.read_text()}")


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> None:
    """SIGTERM to the block's process group (bash, dev.py, daphne, the provider); SIGKILL to what is left."""
    signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (process.poll() is None or not all(map(port_is_free, ports))):
        time.sleep(0.1)
    signal_group(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


@pytest.mark.parametrize("group", SERVE_GROUPS, ids=[group.id for group in SERVE_GROUPS])
def test_serve_blocks(group: ServeGroup, clone: Clone, tmp_path: Path) -> None:
    require_programs_of(group.block, *group.while_serving)
    busy = [port for port in group.ports if not port_is_free(port)]
    if busy:
        message = f"{group.block.where} listens on port(s) {busy}, which something else holds"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            bash(group.block.script()),
            cwd=clone.path,
            env=user_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for port in group.ports:
            wait_for_http(port, process, log, group.block.where)
        for block in group.while_serving:
            run_block(block, clone.path)
        assert process.poll() is None, f"{group.block.where} stopped while serving:\n{log.read_text()}"
        assert "Traceback" not in log.read_text(), f"{group.block.where} logged a traceback:\n{log.read_text()}"
    finally:
        stop(process, group.ports)
    assert_nothing_left_behind(clone, group.block.where)


# -- the README's wiring in a new project -----------------------------------------


def project_files() -> dict[Path, list[tuple[Block, Check]]]:
    found: dict[Path, list[tuple[Block, Check]]] = {}
    for block in PYTHON_BLOCKS:
        if block.check is None:
            continue
        try:
            check = parse_check(block.check)
        except ValueError:
            continue  # test_python_blocks_compile names it
        if check.mode == "project":
            found.setdefault(block.file, []).append((block, check))
    return found


PROJECTS = project_files()

#: Runs in the new project, as its own process: Django set up from the project's
#: settings, then a socket opened through the project's ASGI application.
HANDSHAKE = """
import asyncio, json, sys

import django
from django.test.utils import override_settings, setup_test_environment

django.setup()
# As Django's test runner does: adds "testserver" to ALLOWED_HOSTS, the host of
# the communicators' Origin, before the Origin validator reads it.
setup_test_environment()
# The wiring's channel layer is channels-redis, and no redis-server runs here:
# the in-memory layer stands in for it (a settings override, nothing else changes).
with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
    from channels.routing import get_default_application
    from channels_bearer.testing import BearerCommunicator

    application = get_default_application()
    path, token = sys.argv[1], sys.argv[2]

    async def main():
        communicator = BearerCommunicator(application, path, token=token)
        connected, subprotocol = await communicator.connect()
        first = await communicator.receive_json_from() if connected else None
        await communicator.disconnect()
        wrong = BearerCommunicator(application, path, token="not-a-token")
        wrong_outcome = await wrong.connect()
        none = BearerCommunicator(application, path, token=None)
        no_token_outcome = await none.connect()
        foreign = BearerCommunicator(application, path, token=token, headers=[(b"origin", b"https://evil.example")])
        foreign_outcome = await foreign.connect()
        scripted = BearerCommunicator(application, path, token=token, headers=[(b"host", b"testserver")])
        scripted_outcome = await scripted.connect()
        await scripted.disconnect()
        print(json.dumps({
            "accepted": [connected, subprotocol], "first": first, "wrong": list(wrong_outcome),
            "no_token": list(no_token_outcome), "foreign": list(foreign_outcome), "no_origin": list(scripted_outcome),
        }))

    asyncio.run(main())
"""


@pytest.mark.parametrize("source", list(PROJECTS), ids=[str(p.relative_to(ROOT)) for p in PROJECTS])
def test_the_wiring_works_in_a_new_project(source: Path, tmp_path: Path) -> None:
    files = PROJECTS[source]
    settings_paths = [check.path for _, check in files if check.path.endswith("/settings.py")]
    assert len(settings_paths) == 1, f"{source.name}: one 'project NAME/settings.py' block, not {settings_paths}"
    name = settings_paths[0].split("/")[0]
    apps = sorted({check.path.split("/")[0] for _, check in files if "/" in check.path} - {name})
    project = tmp_path / "project"
    project.mkdir()
    # As the suite runs (pyproject.toml's filterwarnings): deprecations are errors in the new project too.
    python = [sys.executable, "-W", "error::DeprecationWarning", "-W", "error::PendingDeprecationWarning"]

    def run(*args: str) -> str:
        # channels-bearer as this checkout has it (an installed copy would do the same).
        env = {**user_environment(), "PYTHONPATH": str(ROOT)}
        if args[0] == "-c":
            env["DJANGO_SETTINGS_MODULE"] = f"{name}.settings"
        result = subprocess.run(
            [*python, *args], cwd=project, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
        what = "the handshake script" if args[0] == "-c" else " ".join(args)
        assert result.returncode == 0, f"{what} in the new project:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    run("-m", "django", "startproject", name, ".")
    for app in apps:
        run("manage.py", "startapp", app)
    for block, check in files:
        target = project / check.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if check.append:
            with target.open("a") as file:
                file.write(f"\n\n# {block.where}\n{block.text}")
        else:
            target.write_text(block.text)

    checked = run("manage.py", "check", "--fail-level", "WARNING")
    assert "no issues" in checked, checked
    run("manage.py", "migrate", "--no-input", "-v", "0")
    token = run("manage.py", "bearer_token", "alice", "--create")
    assert re.fullmatch(r"\S+\n", token), f"bearer_token printed more than a token: {token!r}"

    asgi = "".join(block.text for block, check in files if check.path.endswith("asgi.py"))
    route = re.search(r"path\(\s*[\"'](ws/[^\"']*)", asgi)
    assert route, f"{source.name}: the asgi.py block routes no ws/ path"
    outcome = json.loads(run("-c", HANDSHAKE, "/" + route[1], token.strip()).splitlines()[-1])

    assert outcome["accepted"] == [True, "access_token"], outcome
    assert "alice" in json.dumps(outcome["first"]), f"the consumer's first frame does not name its user: {outcome}"
    assert outcome["wrong"][0] is False and outcome["no_token"][0] is False, outcome
    assert outcome["foreign"][0] is False, outcome
    assert outcome["no_origin"] == [True, "access_token"], f"a client with a token and no Origin was refused: {outcome}"
