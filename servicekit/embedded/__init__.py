"""Real PostgreSQL, Redis and a Kafka-protocol broker from pip packages, as child processes.

`ecommerce dev` and the test suite use these when no external server is configured. Each server
listens on a free TCP port on 127.0.0.1, keeps its files under the directory it is given, and dies
with the process that started it.

The servers share `EmbeddedServer` (server.py), the supervision of one child process; postgres.py,
redis.py and broker.py each say how to prepare, start and probe their own.
"""

from servicekit.embedded.broker import EmbeddedBroker
from servicekit.embedded.postgres import EmbeddedPostgres
from servicekit.embedded.redis import EmbeddedRedis
from servicekit.embedded.server import EmbeddedServer, EmbeddedServerError, free_port

__all__ = [
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServer",
    "EmbeddedServerError",
    "free_port",
]
