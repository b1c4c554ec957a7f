"""`retouch-sidecar service`: what it would write on each platform, that a dry run
touches nothing, status and its exit codes, and the rotated log file it points at."""

from __future__ import annotations

import argparse
import configparser
import logging
import logging.handlers
import plistlib
import shlex
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import FakeHealth, free_port, wait_until

from sidecar import cli, service
from sidecar.service_files import PLATFORMS, TASK_NAMESPACE, UNIT_NAME, plan, this_platform

NS = {"t": TASK_NAMESPACE}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private HOME and XDG / Windows folders, all under tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local-app-data"))
    return home


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def dry_run(capsys, platform: str, *extra: str) -> tuple[str, str]:
    """The whole output of an install dry run and the file it would write."""
    code = cli.main(["service", "install", "--dry-run", "--platform", platform, *extra])
    assert code == 0
    out = capsys.readouterr().out
    begin = out.index("--- begin ")
    body = out[out.index("\n", begin) + 1 : out.index("--- end ---")]
    return out, body


def test_macos_dry_run_prints_a_launch_agent(home, capsys):
    out, body = dry_run(capsys, "macos", "--port", "7500")
    agent = plistlib.loads(body.encode("utf-8"))
    assert agent["Label"] == "local.retouch-sidecar"
    args = agent["ProgramArguments"]
    assert args[0].endswith("/.venv/bin/retouch-sidecar") or args[0].endswith("/retouch-sidecar")
    assert args[1:4] == ["serve", "--port", "7500"]
    assert args[4] == "--log-file" and args[5].endswith("Library/Logs/retouch-sidecar/sidecar.log")
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] is True
    assert agent["ThrottleInterval"] > 0 and agent["WorkingDirectory"]
    assert "Library/LaunchAgents/local.retouch-sidecar.plist" in out
    assert "launchctl bootstrap gui/" in out


def test_linux_dry_run_prints_a_systemd_user_unit(home, tmp_path, capsys):
    out, body = dry_run(capsys, "linux", "--port", "7500")
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str
    unit.read_string(body)
    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert exec_start[0].endswith("/retouch-sidecar")
    assert exec_start[1:4] == ["serve", "--port", "7500"]
    log_file = exec_start[exec_start.index("--log-file") + 1]
    assert log_file.endswith("retouch-sidecar/sidecar.log")
    assert unit["Service"]["Restart"] == "always"
    assert unit["Service"]["RestartSec"] == "2"
    assert unit["Install"]["WantedBy"] == "default.target"
    assert "systemctl --user enable --now retouch-sidecar.service" in out
    if this_platform() == "linux":  # this machine's folders, XDG respected
        assert exec_start[0] == str(Path(sys.executable).with_name("retouch-sidecar"))
        assert log_file == str(tmp_path / "xdg-state" / "retouch-sidecar" / "sidecar.log")
        assert str(tmp_path / "xdg-config" / "systemd" / "user" / UNIT_NAME) in out


def test_windows_dry_run_prints_a_logon_task(home, capsys):
    out, body = dry_run(capsys, "windows", "--port", "7500")
    task = ET.fromstring(body)
    assert task.tag == f"{{{TASK_NAMESPACE}}}Task" and task.get("version") == "1.2"
    assert task.find("t:Triggers/t:LogonTrigger/t:UserId", NS).text
    restart = task.find("t:Settings/t:RestartOnFailure", NS)
    assert restart.find("t:Interval", NS).text == "PT1M"
    assert restart.find("t:Count", NS).text == "999"
    assert task.find("t:Settings/t:ExecutionTimeLimit", NS).text == "PT0S"
    assert task.find("t:Settings/t:MultipleInstancesPolicy", NS).text == "IgnoreNew"
    command = task.find("t:Actions/t:Exec/t:Command", NS).text
    arguments = task.find("t:Actions/t:Exec/t:Arguments", NS).text
    assert command.strip('"').endswith("pythonw.exe") or this_platform() == "windows"
    assert arguments.startswith("-m sidecar serve --port 7500 --log-file ")
    assert "retouch-sidecar\\Logs\\sidecar.log" in arguments
    assert "schtasks /Create /TN retouch-sidecar /XML " in out
    assert "schtasks /Run /TN retouch-sidecar" in out


def test_the_task_file_is_utf16_as_schtasks_expects():
    content = plan("windows", 7431).content
    assert content.startswith(b"\xff\xfe")
    assert ET.fromstring(content).find("t:Actions/t:Exec", NS) is not None


@pytest.mark.parametrize("action", ["install", "uninstall", "status"])
def test_a_dry_run_touches_nothing(home, tmp_path, capsys, action, monkeypatch):
    monkeypatch.setattr(service, "_run", lambda argv: pytest.fail(f"ran {argv}"))
    before = tree(tmp_path)
    for platform in PLATFORMS:
        assert cli.main(["service", action, "--dry-run", "--platform", platform]) == 0
    assert tree(tmp_path) == before
    assert "nothing is written, nothing is run" in capsys.readouterr().out


def test_a_real_run_for_another_platform_is_a_usage_error(home, tmp_path, capsys):
    other = next(platform for platform in PLATFORMS if platform != this_platform())
    before = tree(tmp_path)
    assert cli.main(["service", "install", "--platform", other]) == 2
    assert "--dry-run" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_install_writes_the_file_and_registers_it_then_uninstall_removes_it(
    home, capsys, monkeypatch
):
    if this_platform() is None:
        pytest.skip(f"no service support on {sys.platform}")
    ran: list[tuple[str, ...]] = []
    monkeypatch.setattr(service, "_run", lambda argv: (ran.append(argv), (0, ""))[1])
    monkeypatch.setattr(service, "running_health", lambda port: None)
    target = plan(this_platform(), 7500)
    path = Path(target.service_file)
    assert cli.main(["service", "install", "--port", "7500"]) == 0
    assert path.read_bytes() == target.content
    assert ran == [step.argv for step in target.start]
    assert not [p for p in path.parent.iterdir() if p != path], "no temp file left"

    ran.clear()
    assert cli.main(["service", "install", "--port", "7500"]) == 0  # again: stop, then start
    assert ran == [step.argv for step in (*target.stop, *target.start)]

    ran.clear()
    assert cli.main(["service", "uninstall"]) == 0
    assert not path.exists()
    assert ran == [step.argv for step in (*target.remove_before, *target.remove_after)]
    assert "token" not in capsys.readouterr().out.lower()


def test_status_exit_codes(home, capsys, monkeypatch):
    if this_platform() is None:
        pytest.skip(f"no service support on {sys.platform}")
    monkeypatch.setattr(service, "_run", lambda argv: (127, "not found"))
    port = free_port()
    assert cli.main(["service", "status", "--port", str(port)]) == 3
    out = capsys.readouterr().out
    assert "not installed" in out and f"nothing answers on 127.0.0.1:{port}" in out

    path = Path(plan(this_platform(), port).service_file)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"installed")
    assert cli.main(["service", "status", "--port", str(port)]) == 1
    assert "installed at" in capsys.readouterr().out

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert cli.main(["service", "status", "--port", str(port)]) == 0
        assert "version 9.9.9 answers" in capsys.readouterr().out
    finally:
        server.shutdown()
        server.server_close()


def test_status_with_nothing_installed_and_no_server(home, capsys):
    port = free_port()
    assert cli.main(["service", "status", "--port", str(port)]) == 3
    out = capsys.readouterr().out
    assert "not installed" in out and "nothing answers" in out


def test_serve_log_file_is_rotated(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "LOG_FILE_BYTES", 1000)
    log_file = tmp_path / "logs" / "deep" / "sidecar.log"
    handlers = cli.log_handlers(argparse.Namespace(log_file=log_file))
    rotating = [h for h in handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert len(rotating) == 1 and rotating[0].backupCount == cli.LOG_FILE_BACKUPS
    logger = logging.getLogger("test-service-rotation")
    logger.propagate = False
    logger.addHandler(rotating[0])
    try:
        for i in range(200):
            logger.warning("line %d %s", i, "x" * 50)
    finally:
        logger.removeHandler(rotating[0])
        for handler in handlers:
            handler.close()
    names = sorted(path.name for path in log_file.parent.iterdir())
    assert names == ["sidecar.log", "sidecar.log.1", "sidecar.log.2", "sidecar.log.3"]
    assert all(path.stat().st_size <= 1000 for path in log_file.parent.iterdir())
    assert "line 199" in log_file.read_text()


def user_systemd() -> str | None:
    """Why the real install cannot run here, or None when `systemctl --user` works."""
    if this_platform() != "linux" or shutil.which("systemctl") is None:
        return "needs Linux with systemctl"
    done = subprocess.run(
        ["systemctl", "--user", "show-environment"], capture_output=True, text=True, timeout=10
    )
    if done.returncode != 0:
        return f"no user systemd here ({(done.stderr or done.stdout).strip()})"
    return None


def test_real_install_status_uninstall_as_a_user_unit(capsys):
    """Uses the real ~/.config/systemd/user, so it runs only where user systemd works."""
    reason = user_systemd()
    if reason:
        pytest.skip(reason)
    target = plan("linux", free_port())
    path = Path(target.service_file)
    if path.exists():
        pytest.skip(f"{path} is already installed; not touching it")
    port = target.program[target.program.index("--port") + 1]
    try:
        assert cli.main(["service", "install", "--port", port]) == 0
        assert path.exists()
        # started by systemd, in a process of its own: polled until it answers
        wait_until(lambda: service.running_health(int(port)), 90, 0.5, "the service up")
        assert cli.main(["service", "status", "--port", port]) == 0
        assert "systemctl: active" in capsys.readouterr().out
    finally:
        assert cli.main(["service", "uninstall"]) == 0
    assert not path.exists()
    assert cli.main(["service", "status", "--port", port]) == 3
