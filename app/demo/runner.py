"""``citypark demo``: everything on the local defaults, stopped together by Ctrl-C.

Migrates, seeds the demo district (idempotent), starts the API, the ingest worker, the
simulator (with a day of simulated history at the first start only) and the enforcement
loop, and prints the URLs and development keys. A component that exits is reported by name
and stops the demo: it never claims to be up while a part of it is dead.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from app.core.settings import Settings, get_settings

COMMANDS_AFTER_API = ("ingest", "simulate", "enforce", "rollup")
# simulate: a 24-hour chart at the first start (once); rollup: the management rollups every minute
EXTRA_ARGS = {"simulate": ("--backfill-hours", "24"), "rollup": ("--interval", "60")}
SETTLE_S = 3.0  # a component must stay alive this long after readiness before the demo says "up"
REPRINT_AFTER_S = 20.0  # the start-up logs have scrolled the URLs away by then
DEMO_OPERATOR = "tiedong-city"
SUBSCRIBE_TIMEOUT_S = 30.0  # the simulator starts at the latest then


@dataclass
class Component:
    name: str
    proc: subprocess.Popen[bytes]

    def dead(self) -> int | None:
        """The exit code if it has exited, else None."""
        return self.proc.poll()


def _citypark(*args: str) -> list[str]:
    return [sys.executable, "-c", "from app.cli import main; main()", *args]


def first_dead(components: list[Component]) -> Component | None:
    return next((c for c in components if c.dead() is not None), None)


def wait_ready(url: str, components: list[Component], timeout: float = 60.0) -> Component | bool:
    """True once ``url`` answers 200; the first component that died meanwhile; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (dead := first_dead(components)) is not None:
            return dead
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def stays_alive(components: list[Component], seconds: float) -> Component | None:
    """The first component that dies within ``seconds``, else None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (dead := first_dead(components)) is not None:
            return dead
        time.sleep(0.2)
    return first_dead(components)


def _prepare(settings: Settings) -> dict[str, str]:
    """Migrate, seed, and (in development) make a key of each role for the newcomer."""
    from app.core import migrate as database
    from app.core.db import in_session
    from app.inventory import seed as seed_service

    asyncio.run(database.migrate(settings))
    asyncio.run(in_session(settings, lambda s: seed_service.seed_demo(s, name="tiedong")))
    return asyncio.run(in_session(settings, demo_keys)) if settings.env == "development" else {}


async def demo_keys(session: object) -> dict[str, str]:
    """A new key per role the demo shows: driver, operator (of the city's lots), enforcement, manager."""
    from app.keys import service as keys
    from app.keys.models import ROLES

    out = {}
    for role in ("driver", "operator", "enforcement", "manager"):
        if role in ROLES:
            operator = DEMO_OPERATOR if role == "operator" else None
            plain, _ = await keys.create_key(session, role=role, operator_id=operator,  # type: ignore[arg-type]
                                             name="citypark demo")
            out[role if role != "operator" else f"operator ({DEMO_OPERATOR})"] = plain
    return out


def banner(base: str, running: list[str], keys: dict[str, str], *, again: bool = False) -> str:
    lines = [f"\ncitypark demo is up{' (again, now that start-up is done)' if again else ''}:",
             f"  map        {base}/", f"  API docs   {base}/docs", f"  readiness  {base}/readyz",
             f"  metrics    {base}/metrics", f"  running    {', '.join(running)}"]
    if keys:
        lines.append("  keys (development only; paste one into the map, or send Authorization: Bearer …):")
        lines += [f"    {role:<26} {key}" for role, key in keys.items()]
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def run_demo(*, host: str, port: int, say: Callable[[str], None] | None = None) -> int:
    """Start the API and, where installed, ingest, simulator and enforcement; block until Ctrl-C.

    Returns 0 after Ctrl-C, 1 when a component died (named in the output)."""
    say = say or (lambda text: print(text, flush=True))
    settings = get_settings()
    keys = _prepare(settings)
    base = f"http://{host}:{port}"
    components = [Component("api", subprocess.Popen(_citypark("serve", "--host", host, "--port", str(port))))]
    installed = {ep.name for ep in entry_points(group="citypark.commands")}
    available = [name for name in COMMANDS_AFTER_API if name in installed]
    subscribed = threading.Event()
    try:
        for name in available:
            if name == "simulate":  # only once ingest listens: what is published before is lost
                subscribed.wait(timeout=SUBSCRIBE_TIMEOUT_S)
            components.append(_start(name, subscribed))
        return _watch(components, base, keys, say)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(components)


def _start(name: str, subscribed: threading.Event) -> Component:
    if name != "ingest":
        return Component(name, subprocess.Popen(_citypark(name, *EXTRA_ARGS.get(name, ()))))
    proc = subprocess.Popen(_citypark(name), stderr=subprocess.PIPE)
    threading.Thread(target=_relay, args=(proc, subscribed), daemon=True).start()
    return Component(name, proc)


def _relay(proc: subprocess.Popen[bytes], subscribed: threading.Event) -> None:
    """Pass ingest's log through, noting when it has subscribed (or has died)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.buffer.write(line)
        sys.stderr.flush()
        if b" subscribed: " in line:
            subscribed.set()
    subscribed.set()


def _watch(components: list[Component], base: str, keys: dict[str, str], say: Callable[[str], None]) -> int:
    ready = wait_ready(f"{base}/readyz", components)
    dead = ready if isinstance(ready, Component) else stays_alive(components, SETTLE_S)
    if dead is not None:
        return _died(dead, say, starting=True)
    if ready is False:
        say(f"\ncitypark demo: {base}/readyz is not answering 200 yet (database or broker?); still trying")
    running = [c.name for c in components]
    say(banner(base, running, keys))
    reprint_at = time.monotonic() + REPRINT_AFTER_S
    while True:
        if (dead := first_dead(components)) is not None:
            return _died(dead, say, starting=False)
        if reprint_at and time.monotonic() >= reprint_at:
            say(banner(base, running, keys, again=True))
            reprint_at = 0.0
        time.sleep(0.5)


def _died(component: Component, say: Callable[[str], None], *, starting: bool) -> int:
    when = "while starting" if starting else "while running"
    say(f"\ncitypark demo: {component.name} exited {when} (exit code {component.dead()}); its output is above. "
        "Stopping the demo.")
    return 1


def _stop(components: list[Component]) -> None:
    for c in components:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGINT)
    for c in components:
        try:
            c.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            c.proc.kill()
