"""`retouch-sidecar service install | uninstall | status`: start the sidecar at login
and again whenever it exits (launchd on macOS, Task Scheduler on Windows, a systemd
user unit on Linux). What is written and run per platform is in service_files.py.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TextIO

from .service_files import PLATFORMS, Plan, Step, plan, this_platform
from .settings import LOOPBACK

EXIT_NOT_INSTALLED = 3
HEALTH_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 60

STATUS_EXITS = (
    "status exits 0 when the service is installed and a sidecar answers, "
    "3 when it is not installed, 1 otherwise"
)


def add_parser(sub) -> None:
    """The `service` subcommand, on the CLI's subparsers."""
    service = sub.add_parser(
        "service",
        help="start the sidecar at login and restart it if it exits",
        description="Install, remove or check the sidecar as a per-user service: a "
        "LaunchAgent on macOS, a Task Scheduler task on Windows, a systemd user unit on "
        "Linux. It runs `serve --port PORT --log-file LOG` with this environment's Python; "
        "the log is rotated in the platform's log folder.",
        epilog=f"Exit codes: {STATUS_EXITS}; any action exits 2 for a usage error.",
    )
    service.add_argument(
        "action",
        choices=["install", "uninstall", "status"],
        help="install (and start), uninstall (stop and remove), or status",
    )
    service.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be written and where, and the commands, touching nothing",
    )
    service.add_argument(
        "--platform",
        choices=PLATFORMS,
        help="default: this machine's; another one only with --dry-run",
    )
    service.add_argument("--port", type=int, help="TCP port (default 7431, env RETOUCH_PORT)")


def run_service(args, port: int, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    here = this_platform()
    platform = args.platform or here
    if platform is None:
        print(f"retouch-sidecar: no service support on {sys.platform}", file=sys.stderr)
        return 2
    if platform != here and not args.dry_run:
        print(
            f"retouch-sidecar: this machine is {here or sys.platform}, not {platform}; "
            f"add --dry-run to see what would be installed there",
            file=sys.stderr,
        )
        return 2
    if not 0 < port < 65536:
        print("retouch-sidecar: the service needs a fixed port (1-65535)", file=sys.stderr)
        return 2
    target = plan(platform, port)
    action = {"install": install, "uninstall": uninstall, "status": status}[args.action]
    return action(target, port, dry_run=args.dry_run, out=out)


def install(target: Plan, port: int, *, dry_run: bool = False, out: TextIO) -> int:
    path = Path(target.service_file)
    replacing = target.local and path.exists()
    if dry_run:
        _dry_run_header(target, out)
        print(f"would write {target.service_file}:", file=out)
        print(f"--- begin {target.service_file} ---", file=out)
        print(target.text.rstrip("\n"), file=out)
        print("--- end ---", file=out)
        steps = (*(target.stop if replacing else ()), *target.start)
        _show_steps(target, steps, out)
        print(f"logs would go to {target.log_file} (rotated)", file=out)
        return 0
    if not replacing and running_health(port) is not None:
        print(
            f"note: a sidecar already answers on {LOOPBACK}:{port}; the service takes "
            "over once that one stops",
            file=out,
        )
    if replacing:
        print(f"replacing {path}", file=out)
        if not _run_all(target, target.stop, out):
            return 1
    from .cache.atomic import atomic_write

    atomic_write(path, [target.content], mode=0o644)
    print(f"wrote {path}", file=out)
    if not _run_all(target, target.start, out):
        print(
            f"the service file stays at {path}; `retouch-sidecar service uninstall` removes it",
            file=out,
        )
        return 1
    print(f"installed: the sidecar starts at login on {LOOPBACK}:{port}", file=out)
    print(f"logs: {target.log_file}", file=out)
    print("check it with: retouch-sidecar service status", file=out)
    return 0


def uninstall(target: Plan, port: int, *, dry_run: bool = False, out: TextIO) -> int:
    path = Path(target.service_file)
    if dry_run:
        _dry_run_header(target, out)
        _show_steps(target, target.remove_before, out)
        print(f"would remove {target.service_file}", file=out)
        _show_steps(target, target.remove_after, out, heading="then would run:")
        return 0
    _run_all(target, target.remove_before, out)
    if path.exists():
        path.unlink()
        print(f"removed {path}", file=out)
    else:
        print(f"no service file at {path}", file=out)
    _run_all(target, target.remove_after, out)
    print(f"uninstalled; the log stays at {target.log_file}", file=out)
    return 0


def status(target: Plan, port: int, *, dry_run: bool = False, out: TextIO) -> int:
    if dry_run:
        _dry_run_header(target, out)
        print(f"would check for {target.service_file}", file=out)
        if target.query is not None:
            _show_steps(target, (target.query,), out)
        print(f"would ask http://{LOOPBACK}:{port}/v1/health", file=out)
        return 0
    path = Path(target.service_file)
    installed = path.exists()
    if installed:
        print(f"service: installed at {path}", file=out)
    else:
        print(f"service: not installed (it would be at {path})", file=out)
    if target.query is not None:
        print(f"{target.query.argv[0]}: {_query(target.query)}", file=out)
    health = running_health(port)
    if health is None:
        print(f"sidecar: nothing answers on {LOOPBACK}:{port}", file=out)
    else:
        version = health.get("version", "?")
        print(f"sidecar: version {version} answers on http://{LOOPBACK}:{port}", file=out)
    print(f"log: {target.log_file}", file=out)
    if not installed:
        print("install it with: retouch-sidecar service install", file=out)
        return EXIT_NOT_INSTALLED
    return 0 if health is not None else 1


def _dry_run_header(target: Plan, out: TextIO) -> None:
    print(f"dry run for {target.platform}: nothing is written, nothing is run", file=out)
    for note in target.notes:
        print(f"note: {note}", file=out)


def _show_steps(
    target: Plan, steps: tuple[Step, ...], out: TextIO, *, heading: str = "would run:"
) -> None:
    if not steps:
        return
    print(heading, file=out)
    for step in steps:
        suffix = "  (a failure here is ignored)" if step.tolerated else ""
        print(f"  {target.show(step)}{suffix}", file=out)


def _run(argv: tuple[str, ...]) -> tuple[int, str]:
    """Exit status and output; 127 when the tool is not there."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return 127, f"{argv[0]} not found"
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} did not finish in {COMMAND_TIMEOUT_S} s"
    return done.returncode, (done.stdout + done.stderr).strip()


def _run_all(target: Plan, steps: tuple[Step, ...], out: TextIO) -> bool:
    """Run each step; False at the first one that fails and may not."""
    for step in steps:
        code, output = _run(step.argv)
        print(f"ran {target.show(step)}", file=out)
        if code == 0:
            continue
        said = f": {output}" if output else ""
        if step.tolerated:
            print(f"  (exit {code}, ignored{said})", file=out)
            continue
        print(f"  failed with exit {code}{said}", file=out)
        return False
    return True


def _query(step: Step) -> str:
    """What the platform says about the service, in a few words."""
    code, output = _run(step.argv)
    if code == 127:
        return "not available here"
    if step.argv[0] == "systemctl":  # is-active prints the state: active, inactive, failed…
        words = output.split()
        return words[0] if len(words) == 1 else f"cannot tell ({output or f'exit {code}'})"
    if step.argv[0] == "launchctl":
        if code != 0:
            return "not loaded"
        state = next((line.strip() for line in output.splitlines() if "state =" in line), "")
        return f"loaded ({state})" if state else "loaded"
    if code != 0:  # schtasks
        return "no such task"
    line = next((line for line in output.splitlines() if line.startswith("Status:")), "")
    return f"registered ({line.split(':', 1)[1].strip()})" if line else "registered"


def running_health(port: int) -> dict | None:
    """The sidecar's /v1/health answer on loopback (public route, no token), or None."""
    url = f"http://{LOOPBACK}:{port}/v1/health"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(url, timeout=HEALTH_TIMEOUT_S) as response:
            body = json.load(response)
    except (OSError, ValueError, http.client.HTTPException):  # refused, timed out, not HTTP
        return None
    return body if isinstance(body, dict) and body.get("status") == "ok" else None
