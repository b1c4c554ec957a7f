"""Checks that every pinned dependency (requirements.lock, plus torch) has a wheel for
each platform users run Photoshop on, at the pinned version, for CPython 3.11, and
writes the table to docs/platforms.md.

    python scripts/check-wheels.py          # needs the package index; a few minutes

Standard library only. It asks pip, with --dry-run, which wheel it would install for
another platform; nothing is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bootstrap import CLUSTER_ONLY, INTEL_MAC_PINS, TORCH, constraints  # noqa: E402

# glibc 2.17 (CentOS 7) up to 2.36 (Debian 12): pip does not widen Linux tags itself
LINUX_TAGS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)] + [
    "manylinux2014_x86_64",
    "linux_x86_64",
]
# name: pip --platform tags (pip widens macOS tags to older releases), the set-up's
# replacement pins there, and whether it installs the diffusion extra (torch) and the
# cluster extra (ray) there
PLATFORMS = {
    "macOS arm64": (["macosx_14_0_arm64"], {}, True, True),
    "macOS x86_64": (["macosx_14_0_x86_64"], INTEL_MAC_PINS, False, False),
    "Windows x86_64": (["win_amd64"], {}, True, True),
    "Linux x86_64": (LINUX_TAGS, {}, True, True),
}
MISSING = re.compile(
    r"(?:No matching distribution found for|Cannot install) ([A-Za-z0-9_.\-]+==[^\s;,]+)"
)


def pins() -> list[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    found = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [*found, TORCH]


def pip_dry_run(tags: list[str], target: str, *, deps: bool) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet"]
    command += ["--ignore-installed", "--only-binary=:all:", "--target", target]
    command += ["--python-version", "3.11", "--implementation", "cp"]
    command += ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    command += [] if deps else ["--no-deps"]
    for tag in tags:
        command += ["--platform", tag]
    return command


def missing_on(tags: list[str], requirements: list[str]) -> list[str]:
    """The requirements pip finds no wheel for on `tags`."""
    missing: list[str] = []
    left = list(requirements)
    with tempfile.TemporaryDirectory() as target:
        while left:
            command = pip_dry_run(tags, target, deps=False)
            done = subprocess.run([*command, *left], capture_output=True, text=True)
            if done.returncode == 0:
                break
            match = MISSING.search(done.stderr)
            if not match:
                raise RuntimeError(done.stderr.strip()[-2000:])
            name = match.group(1).rstrip(".").lower()
            gone = [r for r in left if r.lower() == name]
            if not gone:
                raise RuntimeError(f"pip named {name}, which is not a pin")
            missing += gone
            left = [r for r in left if r not in gone]
    return missing


def main() -> int:
    requirements = pins()
    rows = []
    for platform, (tags, overrides, with_torch, with_ray) in PLATFORMS.items():
        missing = missing_on(tags, requirements)
        installed = constraints(overrides) + ([TORCH] if with_torch else [])
        if not with_ray:
            installed = [pin for pin in installed if pin.partition("==")[0] not in CLUSTER_ONLY]
        still = missing_on(tags, installed)
        print(f"{platform}: missing {missing}; with the set-up's pins {still}", file=sys.stderr)
        rows.append((platform, missing, overrides, with_torch, with_ray, still))
    write(rows, len(requirements))
    return 0


def write(rows: list[tuple], count: int) -> None:
    lines = [
        "# Platforms: wheels for every pinned dependency",
        "",
        f"Written by `python scripts/check-wheels.py`: for each of the {count} pins",
        "(`requirements.lock` and torch, which `scripts/bootstrap.py` pins itself), whether the",
        "package index has a wheel at that version for CPython 3.11 on the platform.",
        "",
        "It then checks the pins `scripts/bootstrap.py` uses there (its replacement pins;",
        "torch only where the diffusion extra is installed, ray only where the cluster extra",
        "is) the same way.",
        "",
        "| platform | pins without a wheel | the set-up there | without a wheel after it |",
        "|---|---|---|---|",
    ]
    for platform, missing, overrides, with_torch, with_ray, still in rows:
        changes = [f"{name} {version}" for name, version in overrides.items()]
        changes += [] if with_torch else ["no diffusion extra (torch)"]
        changes += [] if with_ray else ["no cluster extra (ray)"]
        lines.append(
            f"| {platform} | {', '.join(missing) or 'none'} | "
            f"{', '.join(changes) or 'as locked'} | {', '.join(still) or 'none'} |"
        )
    lines += ["", *NOTES]
    (ROOT / "docs" / "platforms.md").write_text("\n".join(lines) + "\n")


NOTES = [
    "- torch publishes no macOS x86_64 (Intel Mac) wheels after 2.2. On an Intel Mac the",
    "  set-up leaves out the diffusion extra (torch, diffusers, transformers, peft): the",
    "  classical retouch engine, the default, runs; `serve --model` says it needs the extra.",
    "- ray publishes no macOS x86_64 wheels after 2.49.2. On an Intel Mac the set-up leaves",
    "  out the cluster extra (ray): `batch --cluster` says it needs ray, its tests are",
    "  skipped, and the single-machine batch runs.",
    "- mediapipe needs jax, jaxlib and sentencepiece; the locked jaxlib and sentencepiece",
    "  have no Intel Mac wheels, so the set-up pins the newest releases that do there.",
    "- The browser-panel tests' set-up (`scripts/setup-browser`: npm and Debian's Chromium)",
    "  is Linux-only; elsewhere `scripts/bootstrap.py test` skips them and says so.",
]


if __name__ == "__main__":
    sys.exit(main())
