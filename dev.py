#!/usr/bin/env python3
"""Set up and run channels-bearer's demo and test suite, with only Python installed.

    python3 dev.py demo     # http://127.0.0.1:8000/  (user "demo", password "demo")
                            # --port N, --host H; --oidc adds a stand-in OpenID Connect provider
    python3 dev.py test     # mypy and the whole test suite (extra arguments go to pytest)
                            # --all: the supported matrix (tox.ini), as CI runs it
    python3 dev.py docs     # build the documentation strictly (mkdocs build --strict) into site/
    python3 dev.py bench    # the benchmark (see bench/README.md); --quick for a smoke run,
                            # --publish to write bench/published/, which docs/performance.md includes

Each creates ``.venv/`` on first use and installs the package with its
development dependencies there; later runs reuse it.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import socket
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
DEMO_HOST = "127.0.0.1"
DEMO_PORT = 8000
PROVIDER_PORT = 9000
#: The supported matrix (tox.ini): (Python, tox environment).
MATRIX = [("3.11", "py311-django52"), ("3.12", "py312-django60"), ("3.13", "py313-django61")]


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=ROOT, env=env, check=True)


def own_environment() -> dict[str, str]:
    """This environment without what tox sets for its own installs (a row's Django pin)."""
    return {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "VIRTUAL_ENV")}


def ensure_venv() -> None:
    """Create .venv and install the package with [dev], again whenever pyproject.toml changes."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if os.environ.get("CHANNELS_BEARER_NO_INSTALL") == "1":
        # Set by the test suite, which must install nothing while it runs.
        raise SystemExit(
            ".venv is missing or older than pyproject.toml, and CHANNELS_BEARER_NO_INSTALL=1 forbids "
            "installing: run python3 dev.py test once without it."
        )
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing channels-bearer and its development dependencies into .venv ...", flush=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip", env=own_environment())
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]", env=own_environment())
    STAMP.write_text(wanted)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py demo", description="Run the demo project under daphne.")
    parser.add_argument("--host", default=DEMO_HOST, help=f"address to listen on (default {DEMO_HOST})")
    parser.add_argument("--port", type=int, default=DEMO_PORT, help=f"port to listen on (default {DEMO_PORT})")
    parser.add_argument(
        "--oidc",
        action="store_true",
        help="also accept JWTs from a stand-in OpenID Connect provider (testproject/provider.py) on loopback",
    )
    parser.add_argument("--provider-port", type=int, default=PROVIDER_PORT, help=f"its port (default {PROVIDER_PORT})")
    parser.add_argument(
        "--oidc-algorithm", choices=("RS256", "ES256"), default="RS256", help="how it signs tokens (default RS256)"
    )
    options = parser.parse_args(argv)
    for port in [options.port] + ([options.provider_port] if options.oidc else []):
        if port_in_use(options.host, port):
            flag = "--port" if port == options.port else "--provider-port"
            print(
                f"Port {port} on {options.host} is in use. Stop what runs there, or pick another: "
                f"python3 dev.py demo {flag} {port + 1}",
                file=sys.stderr,
            )
            return 1
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
    provider: subprocess.Popen[str] | None = None
    lines = [
        f"\n  channels-bearer demo: http://{options.host}:{options.port}/",
        f"  sign in as {DEMO_USER!r} with password {DEMO_PASSWORD!r}",
        f"  a token for scripts: {PYTHON.relative_to(ROOT)} testproject/manage.py bearer_token {DEMO_USER}",
    ]
    try:
        if options.oidc:
            provider = subprocess.Popen(
                [str(PYTHON), str(ROOT / "testproject" / "provider.py"), "--host", options.host,
                 "--port", str(options.provider_port), "--algorithm", options.oidc_algorithm],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert provider.stdout is not None
            issuer, audience, token = (provider.stdout.readline().strip() for _ in range(3))
            if not token:
                print("The stand-in provider did not start.", file=sys.stderr)
                return 1
            env.update(BEARER_JWKS_URL=f"{issuer}/jwks.json", BEARER_JWT_ISSUER=issuer, BEARER_JWT_AUDIENCE=audience)
            lines += [
                f"  a stand-in OpenID Connect provider: {issuer}/.well-known/openid-configuration",
                f"  a token it issued for 'carol' (more: {issuer}/token?sub=<username>):",
                f"    {token}",
            ]
        print("\n".join(lines) + "\n  Ctrl-C stops the server.\n", flush=True)
        run(PYTHON, "-m", "daphne", "-b", options.host, "-p", str(options.port), "testproject.asgi:application", env=env)
    except KeyboardInterrupt:
        pass
    finally:
        if provider is not None:
            provider.terminate()
            provider.wait(timeout=10)
    return 0


def find_python(version: str) -> str | None:
    """An interpreter of ``version``: on PATH, or installed by pyenv beside the default one."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")))
    for candidate in filter(None, candidates):
        # pyenv's shims are on PATH for every version but run only the selected ones.
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def test(argv: list[str]) -> int:
    matrix = "--all" in argv
    pytest_args = [arg for arg in argv if arg != "--all"]
    pythons: dict[str, str | None] = {}
    if matrix:
        # Before anything slow: a missing row is an error that names it, never a skip.
        pythons = {version: find_python(version) for version, _ in MATRIX}
        missing = [f"Python {version} (for {env})" for version, env in MATRIX if pythons[version] is None]
        if missing:
            print(
                f"Cannot run the whole matrix: {', '.join(missing)} not found on PATH nor in pyenv's versions. "
                "Install it (pyenv install, or your system's packages), then run this again.",
                file=sys.stderr,
            )
            return 1
    ensure_venv()
    print("mypy --strict channels_bearer", flush=True)
    mypy = subprocess.run([str(PYTHON), "-m", "mypy"], cwd=ROOT)
    if not matrix:
        result = subprocess.run([str(PYTHON), "-m", "pytest", *pytest_args], cwd=ROOT)
        return result.returncode or mypy.returncode
    envs = ",".join(env for _, env in MATRIX)
    discover = [path for path in pythons.values() if path]
    tox = subprocess.run(
        [str(PYTHON), "-m", "tox", "-e", envs, "--discover", *discover, "--", *pytest_args], cwd=ROOT, env=own_environment()
    )
    return tox.returncode or mypy.returncode


def docs(argv: list[str]) -> int:
    ensure_venv()
    # mkdocs-material 9.7+ prints a page-long notice about MkDocs 2.0 on every build.
    env = {**own_environment(), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([str(PYTHON), "-m", "mkdocs", "build", "--strict", *argv], cwd=ROOT, env=env).returncode


def bench(bench_args: list[str]) -> int:
    ensure_venv()
    status = subprocess.run([str(PYTHON), str(ROOT / "bench" / "run.py"), *bench_args], cwd=ROOT).returncode
    passed_on = [arg for arg in bench_args if arg in ("--quick", "--publish")]
    return status or subprocess.run([str(PYTHON), str(ROOT / "bench" / "revocation.py"), *passed_on], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print(f"channels-bearer needs Python 3.11 or newer; this is {sys.version.split()[0]}.", file=sys.stderr)
        return 2
    commands = {"demo": demo, "test": test, "docs": docs, "bench": bench}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
