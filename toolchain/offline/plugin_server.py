"""Serving a Pulumi plugin over gRPC: the protocol every plugin follows.

The engine starts a plugin, reads the port it listens on from the first line of its
stdout, and talks gRPC to it. Shared by the offline plugins in this directory.
"""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Callable

import grpc

# Resource payloads (kubeconfigs, CA bundles) exceed gRPC's 4 MiB default.
MAX_MESSAGE = 400 * 1024 * 1024


def serve(register: Callable[[grpc.Server], None]) -> None:
    """Starts the server on a free loopback port, prints the port, blocks until killed."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                 ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    server.wait_for_termination()


def engine_address(argv: list[str]) -> str | None:
    """The engine's address: the last argument that is not a flag (plugins get flags first)."""
    positional = [a for a in argv[1:] if not a.startswith("-")]
    return positional[-1] if positional else None
