"""`make run`'s launcher: gunicorn and the worker together, stopped cleanly by Ctrl-C within
five seconds (no crash message, no process left behind; product.md "running modes")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def _session_members(sid: int) -> list[int]:
    """Live processes whose session is `sid` (a child and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry.name))
    return found


def test_ctrl_c_stops_the_web_app_and_the_worker_within_five_seconds(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/registry.db",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "portal.cli.serve", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            assert launcher.poll() is None, launcher.stdout.read().decode()
            assert time.monotonic() < deadline, "the web app never answered"
            time.sleep(0.2)
        children = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(children) == 2  # gunicorn's master and the worker
        time.sleep(1)  # the worker is up and sweeping
        started = time.monotonic()
        launcher.send_signal(signal.SIGINT)
        launcher.wait(timeout=10)
        took = time.monotonic() - started
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    output = launcher.stdout.read().decode()
    assert launcher.returncode == 0, output
    assert took < 5, f"took {took:.1f} s"
    assert "Segmentation fault" not in output and "Traceback" not in output, output
    assert output.rstrip().endswith("stopped")
    for child in children:
        assert _session_members(child) == []
