"""The real process: `retouch-sidecar serve` and `token`, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from helpers import free_port, wait_until


def cli(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        **kwargs,
    )


@pytest.mark.linux_only  # SIGINT to a child, and /proc/net/tcp
def test_serve_health_token_and_graceful_stop(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "RETOUCH_CACHE_DIR": str(tmp_path / "cache"),
        "RETOUCH_CONFIG_DIR": str(tmp_path / "config"),
        "RETOUCH_PORT": "1",
    }
    # --port beats RETOUCH_PORT (flags > env > defaults)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def health() -> dict | None:
            assert proc.poll() is None, "the sidecar exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as r:
                    return json.load(r)
            except (urllib.error.URLError, ConnectionError):
                return None  # not listening yet

        # another process: its health answer is the one sign that it is up
        health = wait_until(health, timeout=30, interval=0.1, what="the sidecar up")
        assert health["status"] == "ok" and health["version"]

        token = cli("token", env=env, check=True).stdout.strip()
        assert token == (tmp_path / "config" / "token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/images/{'0' * 64}",
            method="HEAD",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
        else:
            raise AssertionError("expected 404 for an unknown image")

        # bound to loopback only: the listening socket is 127.0.0.1, not a wildcard
        listening = _listening_addresses(port)
        assert listening == {"127.0.0.1"}, listening
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert token not in output


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table, family in (("/proc/net/tcp", "4"), ("/proc/net/tcp6", "6")):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A = LISTEN
                continue
            if family == "4":
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
            else:
                found.add(f"ipv6:{address}")
    return found


def test_bad_setting_is_a_clear_message_not_a_traceback(tmp_path):
    env = {**os.environ, "RETOUCH_CONFIG_DIR": str(tmp_path), "RETOUCH_PORT": "not-a-port"}
    result = cli("token", env=env)
    assert result.returncode == 2
    assert "bad setting port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_batch_keeps_freed_memory_for_the_next_image(tmp_path, monkeypatch):
    from sidecar import batch, cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("heap") or True)
    monkeypatch.setattr(cli, "blas_on_one_thread", lambda: calls.append("blas") or 1)
    monkeypatch.setattr(cli, "defer_unused", lambda: calls.append("deferred") or [])
    monkeypatch.setattr(batch, "run_command", lambda *args: calls.append("run") or 0)
    monkeypatch.setattr(cli, "_quick_exit", False)  # set by main, put back after
    monkeypatch.setenv("RETOUCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RETOUCH_CONFIG_DIR", str(tmp_path / "config"))
    shoot = ["batch", str(tmp_path), str(tmp_path / "out"), "--op", "beauty"]
    one = ["apply", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--op", "beauty"]
    assert cli.main(shoot) == 0
    assert calls == ["run"] and not cli._quick_exit  # called from other code: left alone
    calls.clear()
    monkeypatch.setattr(cli, "_program", True)  # as `run` has it
    assert cli.main(shoot) == 0
    assert calls == ["heap", "blas", "deferred", "run"]  # before the sidecar's threads start
    assert cli._quick_exit
    calls.clear()
    assert cli.main(one) == 0
    assert calls == ["blas", "deferred", "run"]  # one image: nothing to reuse


@pytest.mark.linux_only
def test_the_heap_setting_takes_on_glibc():
    # in a process of its own: the test run's own heap is left as it is
    code = "from sidecar.heap import keep_freed_memory; print(keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_the_sidecars_blas_runs_on_one_thread():
    # in a process of its own, as the sidecar sets it up
    code = (
        "from sidecar.blas import blas_on_one_thread; from threadpoolctl import threadpool_info;"
        "n = blas_on_one_thread();"
        "blas = [i for i in threadpool_info() if i['internal_api'] == 'openblas'];"
        "print(n, sorted({i['num_threads'] for i in blas}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split(maxsplit=1) == ["1", "[1]\n"], done.stderr


def sounddevice_loads() -> bool:
    """Whether sounddevice imports here (it needs the PortAudio library)."""
    done = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True)
    return done.returncode == 0


def test_what_mediapipe_imports_for_plots_and_sound_is_imported_only_once_used():
    # in a process of its own, as the sidecar starts: mediapipe loads without them, and
    # code that uses them still gets the real modules
    code = (
        "import sys; from sidecar.deferred import defer_unused\n"
        "assert defer_unused() == ['matplotlib.pyplot', 'sounddevice']\n"
        "assert defer_unused() == []  # once\n"
        "import mediapipe\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "from mediapipe.tasks.python.audio.core import audio_record\n"
        "names = ('matplotlib.pyplot', 'sounddevice')\n"
        "kinds = lambda: [type(sys.modules.get(n)).__name__ for n in names]\n"
        "print(*kinds())\n"
        "assert not hasattr(drawing_utils.plt, '__file__')  # a probe loads nothing\n"
        "print(*kinds())\n"
        "import matplotlib.pyplot as plt\n"
        "figure = drawing_utils.plt.figure\n"
        "print(*kinds(), figure is plt.figure, figure.__module__)\n"
        "try:\n"  # the real sounddevice, or its error where PortAudio is missing
        "    print(callable(audio_record.sd.query_devices), *kinds())\n"
        "except OSError:\n"
        "    print(True, *kinds())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == [
        "_Deferred _Deferred",
        "_Deferred _Deferred",
        "module _Deferred True matplotlib.pyplot",
        "True module " + ("module" if sounddevice_loads() else "NoneType"),
    ]


@pytest.mark.parametrize("quick", [True, False])
def test_a_file_command_ends_the_process_at_once_with_its_code(quick):
    # what a finished `apply` or `batch` skips: the interpreter's teardown and atexit
    code = (
        "import atexit, sidecar.cli as cli\n"
        "atexit.register(lambda: print('torn down', flush=True))\n"
        f"cli.main = lambda: (setattr(cli, '_quick_exit', {quick}), print('done'), 3)[-1]\n"
        "cli.run()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == (["done"] if quick else ["done", "torn", "down"])
