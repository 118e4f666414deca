#!/usr/bin/env python3
"""Set up and run channels-bearer's demo and test suite, with only Python installed.

    python3 dev.py demo     # http://127.0.0.1:8000/  (user "demo", password "demo")
    python3 dev.py test     # the whole test suite (extra arguments go to pytest)
    python3 dev.py bench    # the benchmark (see bench/README.md); --quick for a smoke run

Both create ``.venv/`` on first use and install the package with its
development dependencies there; later runs reuse it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".channels-bearer-installed"
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_ADDRESS = ("127.0.0.1", "8000")


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=True)


def ensure_venv() -> None:
    """Create .venv and install the package with [dev], again whenever pyproject.toml changes."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing channels-bearer and its development dependencies into .venv ...", flush=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def demo() -> int:
    ensure_venv()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    manage = [PYTHON, ROOT / "testproject" / "manage.py"]
    run(*manage, "migrate", "--no-input", "-v", "0", env=env)
    run(
        *manage, "shell", "-c",
        "from django.contrib.auth import get_user_model;"
        f"U = get_user_model(); u = U.objects.filter(username={DEMO_USER!r}).first() or U(username={DEMO_USER!r});"
        f"u.set_password({DEMO_PASSWORD!r}); u.is_active = True; u.save()",
        env=env,
    )  # fmt: skip
    host, port = DEMO_ADDRESS
    print(
        f"\n  channels-bearer demo: http://{host}:{port}/\n"
        f"  sign in as {DEMO_USER!r} with password {DEMO_PASSWORD!r}\n"
        f"  a token for scripts: {PYTHON.relative_to(ROOT)} testproject/manage.py bearer_token {DEMO_USER}\n"
        "  Ctrl-C stops the server.\n",
        flush=True,
    )
    try:
        run(PYTHON, "-m", "daphne", "-b", host, "-p", port, "testproject.asgi:application", env=env)
    except KeyboardInterrupt:
        pass
    return 0


def test(pytest_args: list[str]) -> int:
    ensure_venv()
    print("mypy --strict channels_bearer", flush=True)
    mypy = subprocess.run([str(PYTHON), "-m", "mypy"], cwd=ROOT)
    result = subprocess.run([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT)
    return result.returncode or mypy.returncode


def bench(bench_args: list[str]) -> int:
    ensure_venv()
    # The peer package is installed for the benchmark only.
    run(PYTHON, "-m", "pip", "install", "--quiet", "-r", ROOT / "bench" / "requirements.txt")
    status = subprocess.run([str(PYTHON), str(ROOT / "bench" / "run.py"), *bench_args], cwd=ROOT).returncode
    quick = ["--quick"] if "--quick" in bench_args else []
    return status or subprocess.run([str(PYTHON), str(ROOT / "bench" / "revocation.py"), *quick], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    commands = {"demo": lambda args: demo(), "test": test, "bench": bench}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
