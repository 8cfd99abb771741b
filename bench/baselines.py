"""Baselines measured in the same run as the scenarios, so that figures compare across machines.

- `hello`: a bare ASGI app on the gateway's server stack (uvicorn, uvloop, httptools), loaded by k6;
- `echo`: a bare `grpc.aio` unary echo on uvloop (the services' stack), loaded by k6 through
  `bench/echo.proto`;
- `pg`: an asyncpg primary-key select loop over the seeded products (selects per second);
- `bcrypt`: raw `bcrypt.checkpw` at the configured cost on as many threads as cores.

Each is `python -m bench.baselines <kind> ...` in its own process: the servers run until
terminated, the loops print one JSON line with their result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import threading
import time
from typing import Any

ECHO_SERVICE = "bench.echo.v1.EchoService"

# --- hello: the HTTP server stack without the GraphQL gateway ---------------------------------

HELLO_BODY = b'{"data":{"hello":"world"}}'


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with a small GraphQL-shaped JSON body, after reading the request."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(HELLO_BODY))],
        }
    )
    await send({"type": "http.response.body", "body": HELLO_BODY})


def serve_hello(port: int) -> None:
    import uvicorn

    uvicorn.run(
        hello_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


# --- echo: grpc.aio without our interceptors ----------------------------------------------------


async def _serve_echo(port: int) -> None:
    import grpc
    from google.protobuf import wrappers_pb2

    # bench/echo.proto declares EchoRequest/EchoReply as `string message = 1`: on the wire that is
    # exactly google.protobuf.StringValue, so the server needs no generated stubs of its own.
    async def echo(request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext) -> Any:
        return wrappers_pb2.StringValue(value=request.value)

    handler = grpc.method_handlers_generic_handler(
        ECHO_SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_echo(port: int) -> None:
    import uvloop

    uvloop.run(_serve_echo(port))


# --- pg: the database without the service ------------------------------------------------------


async def _pg_loop(dsn: str, seconds: float, concurrency: int) -> dict[str, Any]:
    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        ids = [row["id"] for row in await pool.fetch("SELECT id FROM products LIMIT 10000")]
        if not ids:
            raise SystemExit("no products to select")
        # A product and its stock, the sum of its live variants', as the catalog reads one.
        query = """
            SELECT p.id, p.sku, p.name, p.price_minor, p.currency,
                   (SELECT coalesce(sum(v.stock), 0) FROM product_variants v
                    WHERE v.product_id = p.id AND v.archived_at IS NULL) AS stock
            FROM products p WHERE p.id = $1
        """
        counts = [0] * concurrency
        deadline = time.monotonic() + seconds

        async def worker(slot: int) -> None:
            rng = random.Random(slot)
            async with pool.acquire() as conn:
                statement = await conn.prepare(query)
                while time.monotonic() < deadline:
                    await statement.fetchrow(rng.choice(ids))
                    counts[slot] += 1

        began = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.monotonic() - began
    finally:
        await pool.close()
    total = sum(counts)
    return {"selects": total, "seconds": elapsed, "per_second": total / elapsed, "concurrency": concurrency}


def pg_loop(dsn: str, seconds: float, concurrency: int) -> dict[str, Any]:
    import uvloop

    return uvloop.run(_pg_loop(dsn, seconds, concurrency))


# --- bcrypt: the cost of a login without the service ---------------------------------------------


def bcrypt_rate(rounds: int, seconds: float, threads: int) -> dict[str, Any]:
    """checkpw per second on `threads` threads (bcrypt releases the GIL while it hashes)."""
    import bcrypt

    password = b"correct horse battery staple"
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds))
    counts = [0] * threads
    deadline = time.monotonic() + seconds

    def worker(slot: int) -> None:
        while time.monotonic() < deadline:
            if not bcrypt.checkpw(password, hashed):
                raise AssertionError("bcrypt verification failed")
            counts[slot] += 1

    began = time.monotonic()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - began
    total = sum(counts)
    return {
        "verifications": total,
        "seconds": elapsed,
        "per_second": total / elapsed,
        "rounds": rounds,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    hello = kinds.add_parser("hello", help="serve the bare ASGI app")
    hello.add_argument("--port", type=int, required=True)
    echo = kinds.add_parser("echo", help="serve the bare gRPC echo")
    echo.add_argument("--port", type=int, required=True)
    pg = kinds.add_parser("pg", help="asyncpg primary-key selects per second")
    pg.add_argument("--dsn", required=True)
    pg.add_argument("--seconds", type=float, default=10.0)
    pg.add_argument("--concurrency", type=int, default=8)
    crypt = kinds.add_parser("bcrypt", help="bcrypt verifications per second")
    crypt.add_argument("--rounds", type=int, default=12)
    crypt.add_argument("--seconds", type=float, default=10.0)
    crypt.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    if args.kind == "hello":
        serve_hello(args.port)
    elif args.kind == "echo":
        serve_echo(args.port)
    elif args.kind == "pg":
        print(json.dumps(pg_loop(args.dsn, args.seconds, args.concurrency)), flush=True)
    else:
        print(json.dumps(bcrypt_rate(args.rounds, args.seconds, args.threads)), flush=True)


if __name__ == "__main__":
    main()
