"""The app in a real browser, for the benchmarks, the load test and the browser tests: a free port, the app started as
`make run` starts it, Debian's chromium through Playwright (never `playwright install`), and stopping it all again."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
SCRIPT_IDLE = ("() => document.querySelector('[data-testid=stApp]')"  # a page has finished its script run
               "?.getAttribute('data-test-script-state') === 'notRunning'")


def free_port() -> int:
    """A TCP port nobody listens on right now (other apps may run on this machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium_path() -> str | None:
    """Debian's chromium binary, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright, executable: str | None = None):
    """A headless Chromium from `playwright.chromium` (sync or async API): `executable` or Debian's binary."""
    executable = executable or chromium_path()
    if executable is None:
        raise RuntimeError("chromium not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def start_app(port: int, env: dict[str, str] | None = None, log: IO[bytes] | int = subprocess.DEVNULL,
              extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """`python -m dance.ui.serve` (what `make run` starts) on 127.0.0.1:`port`, with `env` added to ours."""
    cmd = [sys.executable, "-m", "dance.ui.serve", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false", *extra]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float) -> None:
    """Return once the app on `port` answers its health check; RuntimeError if it exits or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("streamlit did not start")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Ask a server process to stop, and kill it if it has not within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
