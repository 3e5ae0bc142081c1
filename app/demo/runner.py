"""``citypark demo``: everything on the local defaults, stopped together by Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import entry_points

from app.core.settings import get_settings

COMMANDS_AFTER_API = ("ingest", "simulate", "enforce")


def _citypark(*args: str) -> list[str]:
    return [sys.executable, "-c", "from app.cli import main; main()", *args]


def _wait_ready(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _prepare() -> None:
    from app.core import migrate as database
    from app.core.db import in_session
    from app.inventory import seed as seed_service

    settings = get_settings()
    asyncio.run(database.migrate(settings))
    asyncio.run(in_session(settings, lambda s: seed_service.seed_demo(s, name="tiedong")))


def run_demo(*, host: str, port: int) -> int:
    """Start the API and, where installed, the ingest worker and simulator; block until Ctrl-C."""
    _prepare()
    base = f"http://{host}:{port}"
    procs = [subprocess.Popen(_citypark("serve", "--host", host, "--port", str(port)))]
    available = {ep.name for ep in entry_points(group="citypark.commands")}
    procs += [subprocess.Popen(_citypark(name)) for name in COMMANDS_AFTER_API if name in available]
    try:
        ready = _wait_ready(f"{base}/readyz")
        print(f"\ncitypark demo {'is up' if ready else 'started, /readyz not yet 200'}:\n"
              f"  map        {base}/\n  API docs   {base}/docs\n  readiness  {base}/readyz\n"
              f"  metrics    {base}/metrics\n"
              f"  running    {', '.join(['api', *sorted(available & set(COMMANDS_AFTER_API))])}\n"
              "Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
