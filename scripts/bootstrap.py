"""One set-up and launch path for Linux, macOS and Windows (standard library only).

    python scripts/bootstrap.py run [ARGS]    set up .venv, then `retouch-sidecar serve ARGS`
    python scripts/bootstrap.py test [ARGS]   set up .venv with the dev extras, then every
                                              check; ARGS go to pytest
    python scripts/bootstrap.py setup [dev]   only set up (what the other scripts call)

`scripts/run` and `scripts/test` (Linux, macOS) and `scripts\\run.cmd`, `scripts\\test.cmd`
(Windows) call this. The environment is made once and kept in step with pyproject.toml,
requirements.lock and this file (a stamp in .venv).

torch is installed first, pinned, so pip never resolves an unpinned torch (which on Linux
pulls gigabytes of CUDA packages). For an NVIDIA GPU, point RETOUCH_TORCH_INDEX_URL at
the PyTorch wheel index of your CUDA version before the first run (delete .venv to
switch later). torch has no wheels for Intel Macs at the pinned version: there the
diffusion extra is left out and the classical engine (the default) runs alone.
The dev set-up also installs the cluster extra (ray, for `batch --cluster` and its
tests), wherever ray has wheels at its pin: not on Intel Macs either, where
`batch --cluster` says it needs ray and its tests are skipped.
RETOUCH_PYTHON names the Python 3.11 to build .venv with when this one is not 3.11.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
STAMP = VENV / ".setup-stamp"
TORCH = "torch==2.13.0"
# What only the cluster extra brings (left out where ray has no wheels at its pin).
CLUSTER_ONLY = ("ray",)
# Intel Macs: the pins below have no macOS x86_64 wheels (docs/platforms.md); these are
# the newest releases that do, and mediapipe takes them.
INTEL_MAC_PINS = {"jax": "0.4.38", "jaxlib": "0.4.38", "sentencepiece": "0.2.2"}
WINDOWS = os.name == "nt"
PANEL_HINT = (
    "browser panel: http://127.0.0.1:{port}/panel/ (it asks once for the token: "
    "retouch-sidecar token)"
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def venv_bin(name: str) -> Path:
    folder = VENV / ("Scripts" if WINDOWS else "bin")
    return folder / (f"{name}.exe" if WINDOWS else name)


def intel_mac() -> bool:
    return sys.platform == "darwin" and platform.machine() == "x86_64"


def has_torch_wheels() -> bool:
    """False on Intel Macs: torch stopped publishing macOS x86_64 wheels after 2.2."""
    return not intel_mac()


def has_ray_wheels() -> bool:
    """False on Intel Macs: ray's last macOS x86_64 wheels are 2.49.2's."""
    return not intel_mac()


def constraints(overrides: dict[str, str] | None = None) -> list[str]:
    """requirements.lock's pins, with this platform's replacements."""
    if overrides is None:
        overrides = INTEL_MAC_PINS if intel_mac() else {}
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    named = {pin.partition("==")[0].lower(): pin for pin in pins}
    for name, version in overrides.items():
        named[name] = f"{name}=={version}"
    return list(named.values())


def extras_for(dev: bool) -> list[str]:
    extras = ["diffusion"] if has_torch_wheels() else []
    if not dev:
        return extras
    return [*extras, *(["cluster"] if has_ray_wheels() else []), "dev"]


def base_python() -> list[str]:
    """A Python 3.11 to build .venv with: this one, RETOUCH_PYTHON, or one on the PATH."""
    if os.environ.get("RETOUCH_PYTHON"):
        return [os.environ["RETOUCH_PYTHON"]]
    if sys.version_info[:2] == (3, 11):
        return [sys.executable]
    if WINDOWS and shutil.which("py"):
        return ["py", "-3.11"]
    found = shutil.which("python3.11")
    if found:
        return [found]
    raise SystemExit(
        "bootstrap: Python 3.11 is needed (this is "
        f"{platform.python_version()}); install it or set RETOUCH_PYTHON to its path"
    )


def stamp_of(extras: list[str]) -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "requirements.lock", "scripts/bootstrap.py"):
        digest.update((ROOT / name).read_bytes())
    digest.update(os.environ.get("RETOUCH_TORCH_INDEX_URL", "").encode())
    digest.update(f"{sys.platform} {platform.machine()}".encode())
    return f"{digest.hexdigest()} {','.join(extras)}"


def is_current(extras: list[str]) -> bool:
    """A venv made with more extras (dev) also serves a plain run."""
    try:
        have_digest, _, have_extras = STAMP.read_text().strip().partition(" ")
    except OSError:
        return False
    want_digest, _, _ = stamp_of(extras).partition(" ")
    return have_digest == want_digest and set(extras) <= set(have_extras.split(","))


def pip(*args: str) -> None:
    command = [str(venv_bin("python")), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*command, *args], check=True, cwd=ROOT)


def setup(dev: bool) -> None:
    extras = extras_for(dev)
    if is_current(extras):
        return
    say(f"setting up {VENV.name} (the first run takes a few minutes)...")
    if not venv_bin("python").exists():
        subprocess.run([*base_python(), "-m", "venv", str(VENV)], check=True)
    pip("install", "--upgrade", "pip>=24")
    if "diffusion" in extras:
        index = os.environ.get("RETOUCH_TORCH_INDEX_URL")
        pip("install", TORCH, *(["--index-url", index] if index else []))
    target = f".[{','.join(extras)}]" if extras else "."
    with tempfile.TemporaryDirectory(prefix="retouch-setup-") as folder:
        pinned = Path(folder) / "constraints.txt"
        pinned.write_text("\n".join(constraints()) + "\n")
        pip("install", "-c", str(pinned), "-e", target)
    STAMP.write_text(stamp_of(extras) + "\n")
    say(f"{VENV.name} ready.")


def run(args: list[str]) -> int:
    setup(dev=False)
    port = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--port"), None)
    say(PANEL_HINT.format(port=port or os.environ.get("RETOUCH_PORT", "7431")))
    command = [str(venv_bin("retouch-sidecar")), "serve", *args]
    if WINDOWS:  # no exec on Windows: wait and pass the exit code on
        return subprocess.call(command, cwd=ROOT)
    os.chdir(ROOT)
    os.execv(command[0], command)  # noqa: S606  (our own venv's entry point)
    return 0  # not reached


def step(title: str, *command: str | Path) -> None:
    say(f"== {title}")
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT)


def test(args: list[str]) -> int:
    """Every check the project has: lint and format, the benchmarks and the soak in quick
    mode (so they cannot rot), the panel's Node tests, the browser panel in headless
    Chromium, and the Python tests (fast set; `-m slow` runs the slow ones)."""
    setup(dev=True)
    python = venv_bin("python")
    try:
        step("ruff", python, "-m", "ruff", "check", ".")
        step("ruff format", python, "-m", "ruff", "format", "--check", "--quiet", ".")
        step("rooms (import-linter contracts in pyproject.toml)", venv_bin("lint-imports"))
        with tempfile.TemporaryDirectory(prefix="bench-quick-") as out:
            step("benchmarks, quick mode", python, "-m", "bench", "--quick", "--out", out)
        step("soak, quick", python, "tests/reliability/soak.py", "--quick")
        node = shutil.which("node")
        if node is None:
            raise SystemExit("bootstrap: Node 20 is needed for the panel's tests (node)")
        step("node --test plugin/test", node, "--test", "plugin/test/")
        browser_tests(node)
        step("pytest", python, "-m", "pytest", *args)
    except subprocess.CalledProcessError as failed:
        return failed.returncode or 1
    return 0


def browser_tests(node: str) -> None:
    """Playwright with Debian's Chromium: its set-up (scripts/setup-browser) is Linux-only.
    Elsewhere the tests run when CHROMIUM_PATH names a Chromium and node_modules is there."""
    if sys.platform.startswith("linux") and shutil.which("bash"):
        step("browser panel set-up", "bash", "scripts/setup-browser")
    elif not (os.environ.get("CHROMIUM_PATH") and (ROOT / "node_modules").is_dir()):
        say(
            "== browser panel: skipped (its set-up installs Debian's Chromium, Linux only; "
            "set CHROMIUM_PATH and run `npm ci` to run it here)"
        )
        return
    step("browser panel (Playwright, Chromium)", node, "--test", "plugin/e2e/")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "setup"):
        say(__doc__.strip())
        return 2
    command, rest = argv[0], argv[1:]
    if command == "setup":
        setup(dev=rest[:1] == ["dev"])
        return 0
    return run(rest) if command == "run" else test(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
