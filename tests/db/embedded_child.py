"""A second "app instance" for the server tests: starts an EmbeddedServer on argv[1],
prints the server's pid, waits for a line on stdin, stops, prints "stopped"."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.db.server import EmbeddedServer  # noqa: E402

server = EmbeddedServer(sys.argv[1])
server.start()
print(server.pid, flush=True)
sys.stdin.readline()
server.stop()
print("stopped", flush=True)
