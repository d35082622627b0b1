"""Fixtures of the Python client's tests: a real handoffd, started once per
session with development certificates from ``handoff certs init``.

The binaries come from ``$HANDOFF_BIN_DIR`` when set, else from
``<repo>/.build/debug`` (where ``make test`` builds them). Missing binaries
fail the tests that need them, loudly: they are never skipped.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "clients" / "python"))

import handoff  # noqa: E402

#: The bearer token the test server knows, for handoff://tenant/acme/agent/token-agent.
TEST_TOKEN = "t0k-python-tests"


def bin_dir() -> Path:
    return Path(os.environ.get("HANDOFF_BIN_DIR") or ROOT / ".build" / "debug")


class ServerProcess:
    """A handoffd process; ``port`` is read from its ``listening on HOST:PORT`` line."""

    def __init__(self, binaries: Path, data: Path, certs: Path, *, listen: str = "127.0.0.1:0",
                 config: Optional[Path] = None, extra: Optional[List[str]] = None) -> None:
        arguments = [str(binaries / "handoffd"), "--listen", listen, "--data", str(data),
                     "--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key"),
                     "--client-ca", str(certs / "ca.pem")]
        if config is not None:
            arguments += ["--config", str(config)]
        arguments += extra or []
        self.data = data
        self.output: List[str] = []
        self._listening = threading.Event()
        self.port = 0
        self.process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        # Drain stderr all along: a full pipe would block the server's logging.
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(30) or not self.port:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("handoffd did not report listening:\n" + "".join(self.output))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.output.append(line)
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if found and not self.port:
                self.port = int(found.group(1))
                self._listening.set()
        self.process.stderr.close()
        self._listening.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Sends ``sig`` and waits for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"handoffd did not exit within {timeout} s of signal {sig}:\n" + "".join(self.output))


@pytest.fixture(scope="session")
def binaries() -> Path:
    directory = bin_dir()
    missing = [name for name in ("handoffd", "handoff") if not os.access(directory / name, os.X_OK)]
    if missing:
        pytest.fail(f"the Handoff binaries {missing} are missing from {directory}: build them (swift build) or "
                    f"point HANDOFF_BIN_DIR at a directory holding them", pytrace=False)
    return directory


@pytest.fixture(scope="session")
def certs(binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("handoff") / "certs"
    made = subprocess.run([str(binaries / "handoff"), "certs", "init", str(directory), "--tenant", "acme",
                           "--tenant", "globex"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    return directory


@pytest.fixture(scope="session")
def server_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Settings for every test server: a known bearer token, a short grace period."""
    path = tmp_path_factory.mktemp("config") / "handoffd.yaml"
    digest = hashlib.sha256(TEST_TOKEN.encode()).hexdigest()
    path.write_text(
        "limits:\n  shutdown_grace_seconds: 2\n"
        f"tokens:\n  - {{identity: \"handoff://tenant/acme/agent/token-agent\", sha256: \"{digest}\"}}\n")
    return path


@pytest.fixture(scope="session")
def server(binaries: Path, certs: Path, server_config: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One handoffd for the whole session; stopped by SIGTERM at the end, which must exit 0."""
    process = ServerProcess(binaries, tmp_path_factory.mktemp("data"), certs, config=server_config)
    yield process
    status = process.stop()
    assert status == 0, f"handoffd exited {status} on SIGTERM:\n" + "".join(process.output)


@pytest.fixture
def start_server(binaries: Path, certs: Path, server_config: Path) -> Iterator["StartServer"]:
    """Starts extra handoffd processes for one test; kills any left running."""
    started: List[ServerProcess] = []

    def start(data: Path, listen: str = "127.0.0.1:0") -> ServerProcess:
        process = ServerProcess(binaries, data, certs, listen=listen, config=server_config)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop(signal.SIGKILL)


StartServer = object  # the type of start_server's value: (data dir, listen=...) -> ServerProcess


def _client(server: ServerProcess, certs: Path, role: str) -> Iterator[handoff.Client]:
    client = handoff.Client.from_certs(server.address, str(certs), role=role, default_timeout=10)
    yield client
    client.close()


@pytest.fixture
def agent(server: ServerProcess, certs: Path) -> Iterator[handoff.Client]:
    """A sync client as acme's agent."""
    yield from _client(server, certs, "agent")


@pytest.fixture
def operator(server: ServerProcess, certs: Path) -> Iterator[handoff.Client]:
    """A sync client as acme's operator."""
    yield from _client(server, certs, "operator")


@pytest.fixture
def approver(server: ServerProcess, certs: Path) -> Iterator[handoff.Client]:
    """A sync client as acme's approver."""
    yield from _client(server, certs, "approver")


def wait_until(predicate, timeout: float = 10, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
