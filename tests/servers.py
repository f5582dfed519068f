"""Real ASGI servers (uvicorn, hypercorn) in their own processes, on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(server: str, app: str, port: int) -> list[str]:
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}"]
    host = ["--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "uvicorn", app, *host, "--lifespan", "on"]


@dataclass
class Server:
    """One server process and where to reach it."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> bool:
        """Send ``sig``, wait for the process to exit; true when it shut down gracefully.

        uvicorn re-raises the signal once its shutdown is complete, so dying of that same
        signal counts as graceful, like exit code 0.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = await anyio.to_thread.run_sync(lambda: self.proc.wait(timeout))
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return code in (0, -sig)


@asynccontextmanager
async def serve(
    app: str, *, env: Mapping[str, str], log_dir: Path, server: str = "uvicorn"
) -> AsyncIterator[Server]:
    """Start ``app`` (``module:attr``) and wait until it answers HTTP; stop it afterwards."""
    running = spawn(app, env=env, log_dir=log_dir, server=server)
    try:
        await wait_ready(running)
        yield running
    finally:
        await running.stop()


def spawn(app: str, *, env: Mapping[str, str], log_dir: Path, server: str) -> Server:
    port = free_port()
    log = log_dir / f"{server}-{port}.log"
    paths = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    full_env = {**os.environ, "PYTHONPATH": paths, **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command(server, app, port), cwd=ROOT, env=full_env, stdout=out, stderr=out
        )
    return Server(proc, port, log)


async def wait_ready(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=2) as http:
        with anyio.fail_after(START_TIMEOUT):
            while True:
                if server.proc.poll() is not None:
                    raise AssertionError(f"server exited early:\n{server.output()}")
                try:
                    await http.get("/")
                    return
                except httpx.TransportError:
                    await anyio.sleep(0.05)


async def wait_until(
    probe: Callable[[], Any], *, timeout: float = 20, what: str = "condition"
) -> Any:
    """Call the async ``probe`` until it returns something true; return that."""
    with anyio.move_on_after(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await anyio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
