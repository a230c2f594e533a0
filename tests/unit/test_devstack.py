"""The dev stack refuses what it cannot own (no server is started here)."""

from __future__ import annotations

import socket

import pytest

from workflowable.ops.devstack import DevStackError, TemporalDevServer, port_is_free


async def test_a_busy_port_is_refused_before_any_server_starts():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        assert not port_is_free(busy)
        server = TemporalDevServer(port=busy, headless=True)
        with pytest.raises(DevStackError, match=f"port {busy} on 127.0.0.1 is in use"):
            await server.start()
        assert server.process is None  # nothing was started, so nothing answers in its place
    assert port_is_free(busy)
