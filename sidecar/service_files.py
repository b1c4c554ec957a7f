"""What `service install` writes and runs on each platform: where the files go, the
file itself (a launchd plist, a Task Scheduler task, a systemd user unit) and the
commands that register, start, stop and query it.

Paths come from this machine when the platform is this machine's; for another
platform (a dry run) they are that platform's usual folders for this user, written
with its own conventions (Windows: %VAR% placeholders).
"""

from __future__ import annotations

import getpass
import os
import plistlib
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from .settings import APP_NAME

PLATFORMS = ("macos", "windows", "linux")
LABEL = f"local.{APP_NAME}"  # launchd
TASK_NAME = APP_NAME  # Task Scheduler
UNIT_NAME = f"{APP_NAME}.service"  # systemd
TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
PROJECT = Path(__file__).resolve().parent.parent  # the folder that holds sidecar/


def this_platform() -> str | None:
    if sys.platform == "darwin":
        return "macos"
    if sys.platform == "win32":
        return "windows"
    if sys.platform.startswith("linux"):
        return "linux"
    return None


@dataclass(frozen=True)
class Step:
    """One command; a tolerated one may fail (e.g. stopping what is not running)."""

    argv: tuple[str, ...]
    tolerated: bool = False


@dataclass(frozen=True)
class Plan:
    platform: str
    local: bool  # paths of this machine (False: another platform's, for a dry run)
    service_file: PurePath
    log_file: PurePath
    program: tuple[str, ...]
    content: bytes
    text: str  # `content` as text, for printing
    start: tuple[Step, ...]  # after the file is written
    stop: tuple[Step, ...]  # before an installed file is replaced
    remove_before: tuple[Step, ...]  # before the file is removed
    remove_after: tuple[Step, ...] = ()
    query: Step | None = None  # is it loaded or running? (status)
    notes: tuple[str, ...] = field(default=())

    def show(self, step: Step) -> str:
        if self.platform == "windows":
            return subprocess.list2cmdline(step.argv)
        return shlex.join(step.argv)


def plan(platform: str, port: int, *, env: Mapping[str, str] | None = None) -> Plan:
    """What installing the service on `platform` means, for the sidecar on `port`."""
    local = platform == this_platform()
    env = os.environ if env is None else env
    if platform == "macos":
        return _macos(port, local)
    if platform == "windows":
        return _windows(port, local, env)
    if platform == "linux":
        return _linux(port, local, env)
    raise ValueError(f"unknown platform {platform!r}")


def _program(python: PurePath, port: int, log_file: PurePath) -> tuple[str, ...]:
    """`retouch-sidecar serve` by its entry point next to the interpreter (macOS, Linux);
    on Windows `pythonw -m sidecar serve`, the same entry point without a console window."""
    options = ("serve", "--port", str(port), "--log-file", str(log_file))
    if python.name.startswith("python") and python.suffix != ".exe":
        return (str(python.with_name("retouch-sidecar")), *options)
    return (str(python), "-m", "sidecar", *options)


def _posix_home(local: bool, foreign_root: str) -> PurePosixPath:
    if local:
        return PurePosixPath(Path.home())
    return PurePosixPath(foreign_root, getpass.getuser())


def _posix_layout(local: bool, home: PurePosixPath) -> tuple[PurePosixPath, PurePosixPath]:
    """The project folder and the interpreter that runs the sidecar."""
    if local:
        return PurePosixPath(PROJECT), PurePosixPath(sys.executable)
    project = home / PROJECT.name
    return project, project / ".venv" / "bin" / "python"


def _foreign_note(project: PurePath) -> tuple[str, ...]:
    return (f"paths for another machine: the project folder is taken to be {project}",)


def _xdg(env: Mapping[str, str], name: str, home: PurePosixPath, default: str) -> PurePosixPath:
    value = env.get(name, "")
    return PurePosixPath(value) if value.startswith("/") else home / default


# --- macOS: a LaunchAgent ---------------------------------------------------------


def _macos(port: int, local: bool) -> Plan:
    home = _posix_home(local, "/Users")
    project, python = _posix_layout(local, home)
    log_file = home / "Library" / "Logs" / APP_NAME / "sidecar.log"
    plist = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    program = _program(python, port, log_file)
    content = render_plist(program, project)
    domain = f"gui/{os.getuid()}" if local and hasattr(os, "getuid") else "gui/UID"
    notes = () if local else (*_foreign_note(project), "UID is the user's id on the Mac (`id -u`)")
    return Plan(
        platform="macos",
        local=local,
        service_file=plist,
        log_file=log_file,
        program=program,
        content=content,
        text=content.decode("utf-8"),
        start=(Step(("launchctl", "bootstrap", domain, str(plist))),),
        stop=(Step(("launchctl", "bootout", f"{domain}/{LABEL}"), tolerated=True),),
        remove_before=(Step(("launchctl", "bootout", f"{domain}/{LABEL}"), tolerated=True),),
        query=Step(("launchctl", "print", f"{domain}/{LABEL}"), tolerated=True),
        notes=notes,
    )


def render_plist(program: tuple[str, ...], working_dir: PurePath) -> bytes:
    agent = {
        "Label": LABEL,
        "ProgramArguments": list(program),
        "WorkingDirectory": str(working_dir),
        "RunAtLoad": True,
        "KeepAlive": True,  # started again whenever it exits
        "ThrottleInterval": 10,  # at most one start per 10 s
        "ProcessType": "Interactive",  # the user waits on it: no background throttling
    }
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=False)


# --- Windows: a per-user Task Scheduler task --------------------------------------


def _windows(port: int, local: bool, env: Mapping[str, str]) -> Plan:
    if local:
        home = PureWindowsPath(Path.home())
        app_data = PureWindowsPath(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
        project = PureWindowsPath(PROJECT)
        python = PureWindowsPath(sys.executable)
        windowless = Path(sys.executable).with_name("pythonw.exe")
        if windowless.exists():  # no console window at every login
            python = PureWindowsPath(windowless)
        user = _windows_user(env)
        notes: tuple[str, ...] = ()
    else:
        home = PureWindowsPath("%USERPROFILE%")
        app_data = PureWindowsPath("%LOCALAPPDATA%")
        project = home / PROJECT.name
        python = project / ".venv" / "Scripts" / "pythonw.exe"
        user = r"%USERDOMAIN%\%USERNAME%"
        notes = (
            *_foreign_note(project),
            "%VAR% placeholders stand for this user's folders and name on Windows",
        )
    log_file = app_data / APP_NAME / "Logs" / "sidecar.log"
    task_file = app_data / APP_NAME / f"{TASK_NAME}.xml"
    program = _program(python, port, log_file)
    text = render_task(program, project, user)
    return Plan(
        platform="windows",
        local=local,
        service_file=task_file,
        log_file=log_file,
        program=program,
        content=b"\xff\xfe" + text.encode("utf-16-le"),  # schtasks reads UTF-16 with a BOM
        text=text,
        start=(
            Step(("schtasks", "/Create", "/TN", TASK_NAME, "/XML", str(task_file), "/F")),
            Step(("schtasks", "/Run", "/TN", TASK_NAME)),
        ),
        stop=(Step(("schtasks", "/End", "/TN", TASK_NAME), tolerated=True),),
        remove_before=(
            Step(("schtasks", "/End", "/TN", TASK_NAME), tolerated=True),
            Step(("schtasks", "/Delete", "/TN", TASK_NAME, "/F"), tolerated=True),
        ),
        query=Step(("schtasks", "/Query", "/TN", TASK_NAME, "/FO", "LIST"), tolerated=True),
        notes=notes,
    )


def _windows_user(env: Mapping[str, str]) -> str:
    name = env.get("USERNAME") or getpass.getuser()
    domain = env.get("USERDOMAIN")
    return f"{domain}\\{name}" if domain else name


def render_task(program: tuple[str, ...], working_dir: PurePath, user: str) -> str:
    """Task Scheduler schema 1.2: at this user's logon, restarted when it fails."""
    ET.register_namespace("", TASK_NAMESPACE)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{TASK_NAMESPACE}}}{tag}", attrs)
        node.text = text
        return node

    task = ET.Element(f"{{{TASK_NAMESPACE}}}Task", version="1.2")
    info = add(task, "RegistrationInfo")
    add(info, "Description", "Runs the retouch sidecar on 127.0.0.1 while this user is logged on.")
    add(info, "URI", f"\\{TASK_NAME}")
    logon = add(add(task, "Triggers"), "LogonTrigger")
    add(logon, "Enabled", "true")
    add(logon, "UserId", user)
    principal = add(add(task, "Principals"), "Principal", id="Author")
    add(principal, "UserId", user)
    add(principal, "LogonType", "InteractiveToken")
    add(principal, "RunLevel", "LeastPrivilege")
    settings = add(task, "Settings")
    for tag, value in (
        ("MultipleInstancesPolicy", "IgnoreNew"),
        ("DisallowStartIfOnBatteries", "false"),
        ("StopIfGoingOnBatteries", "false"),
        ("AllowHardTerminate", "true"),
        ("StartWhenAvailable", "false"),
        ("RunOnlyIfNetworkAvailable", "false"),
    ):
        add(settings, tag, value)
    idle = add(settings, "IdleSettings")
    add(idle, "StopOnIdleEnd", "false")
    add(idle, "RestartOnIdle", "false")
    for tag, value in (
        ("AllowStartOnDemand", "true"),
        ("Enabled", "true"),
        ("Hidden", "false"),
        ("RunOnlyIfIdle", "false"),
        ("WakeToRun", "false"),
        ("ExecutionTimeLimit", "PT0S"),  # no time limit
        ("Priority", "5"),  # normal (the default, 7, is below normal)
    ):
        add(settings, tag, value)
    restart = add(settings, "RestartOnFailure")
    add(restart, "Interval", "PT1M")
    add(restart, "Count", "999")
    exec_ = add(add(task, "Actions", Context="Author"), "Exec")
    command = program[0]
    add(exec_, "Command", f'"{command}"' if " " in command else command)
    add(exec_, "Arguments", subprocess.list2cmdline(program[1:]))
    add(exec_, "WorkingDirectory", str(working_dir))
    ET.indent(task)
    body = ET.tostring(task, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-16"?>\n{body}\n'


# --- Linux: a systemd user unit ---------------------------------------------------


def _linux(port: int, local: bool, env: Mapping[str, str]) -> Plan:
    home = _posix_home(local, "/home")
    if not local:
        env = {}
    project, python = _posix_layout(local, home)
    log_file = _xdg(env, "XDG_STATE_HOME", home, ".local/state") / APP_NAME / "sidecar.log"
    config = _xdg(env, "XDG_CONFIG_HOME", home, ".config")
    unit = config / "systemd" / "user" / UNIT_NAME
    program = _program(python, port, log_file)
    text = render_unit(program, project)
    systemctl = ("systemctl", "--user")
    return Plan(
        platform="linux",
        local=local,
        service_file=unit,
        log_file=log_file,
        program=program,
        content=text.encode("utf-8"),
        text=text,
        start=(
            Step((*systemctl, "daemon-reload")),
            Step((*systemctl, "enable", "--now", UNIT_NAME)),
        ),
        stop=(Step((*systemctl, "stop", UNIT_NAME), tolerated=True),),
        remove_before=(Step((*systemctl, "disable", "--now", UNIT_NAME), tolerated=True),),
        remove_after=(Step((*systemctl, "daemon-reload"), tolerated=True),),
        query=Step((*systemctl, "is-active", UNIT_NAME), tolerated=True),
        notes=() if local else _foreign_note(project),
    )


def render_unit(program: tuple[str, ...], working_dir: PurePath) -> str:
    exec_start = " ".join(_unit_word(word) for word in program)
    return "\n".join(
        [
            "[Unit]",
            "Description=Retouch sidecar on 127.0.0.1 (for the Photoshop panel)",
            "StartLimitIntervalSec=0",  # keep restarting, e.g. until a busy port is free
            "",
            "[Service]",
            "Type=simple",
            f"WorkingDirectory={_unit_escape(str(working_dir))}",
            f"ExecStart={exec_start}",
            "Environment=PYTHONUNBUFFERED=1",
            "Restart=always",
            "RestartSec=2",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def _unit_escape(text: str) -> str:
    """systemd expands %specifiers and $VARIABLES: keep both literal."""
    return text.replace("%", "%%").replace("$", "$$")


def _unit_word(word: str) -> str:
    word = _unit_escape(word)
    if re.fullmatch(r"[\w@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
