"""`python -m bench.run`: start the platform, seed it, run every scenario and baseline, write the report.

    python -m bench.run                     # the full benchmark (make bench); about ten minutes
    python -m bench.run --smoke             # seconds per scenario, 1,000 products (make test runs it)
    python -m bench.run --profile search    # also py-spy flame graphs of the busiest processes
    python -m bench.run --scenarios browse,search --duration 30

The platform runs on the embedded default (PostgreSQL, Redis, broker started here) with
`ECOMMERCE_ENV=production`, in a fresh data directory under the results folder that is deleted
afterwards. Results go to `bench/results/<YYYY-MM-DD>/` (`<date>-smoke` for the smoke mode):
report.md, results.json and PNG charts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import platform as host
import secrets
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import measure, report
from bench.config import BUDGET_SETTINGS, SCENARIO_OPS, Config, parse_args
from bench.seed import plain_dsn, register_shoppers, seed_catalog, seed_shop_terms
from ecommerce_cli.stack import (
    Infrastructure,
    Platform,
    available_services,
    cancelled_on_signals,
    free_port,
    free_ports,
    prepare,
)
from servicekit.security import load_or_create_signing_key

log = logging.getLogger("bench")


def _bench_settings(config: Config, data_dir: Path) -> dict[str, str]:
    """What the bench sets for the platform's processes beyond the embedded default."""
    key_file = data_dir / "keys" / "jwt-signing.pem"
    load_or_create_signing_key(key_file)
    return {
        "ECOMMERCE_ENV": "production",
        "ACCOUNT_JWT_PRIVATE_KEY_FILE": str(key_file),
        "CURSOR_SECRET": secrets.token_urlsafe(32),
        # Tokens outlive the whole run, so no scenario measures a refresh.
        "ACCOUNT_ACCESS_TOKEN_TTL": "3600",
        "ACCOUNT_BCRYPT_ROUNDS": str(config.bcrypt_rounds),
        # A Fernet key: production refuses to start without one.
        "NOTIFICATION_WEBHOOK_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        # Access lines only for failed requests: a line per request is not what a shop's logs keep.
        "LOG_ACCESS": "errors",
        **BUDGET_SETTINGS,
    }


def _public_settings(settings: dict[str, str]) -> dict[str, str]:
    def hidden(name: str) -> bool:
        return "SECRET" in name or name.endswith(("_KEY", "_KEY_FILE"))

    return {k: ("(generated)" if hidden(k) else v) for k, v in sorted(settings.items())}


class Bench:
    def __init__(self, config: Config) -> None:
        self.config = config
        today = datetime.now(UTC).date().isoformat()
        self.out = config.results_dir / (f"{today}-smoke" if config.smoke else today)
        self.data_dir = self.out / "data"
        self.results: dict[str, Any] = {
            "date": today,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "smoke" if config.smoke else "full",
            "config": {
                "products": config.products,
                "shoppers": config.shoppers,
                "duration_s": config.duration,
                "warmup_s": config.warmup,
                "levels": config.levels,
                "login_levels": config.login_levels,
                "baseline_seconds": config.baseline_seconds,
                "broker_events": config.broker_events,
                "scenarios": config.scenarios,
            },
            "baselines": {},
            "scenarios": {},
            "failures": [],
        }
        self.infra: Infrastructure | None = None
        self.platform: Platform | None = None
        self.extra_groups: dict[str, list[int]] = {}
        self.topics: measure.TopicCounter | None = None

    # -- the run -------------------------------------------------------------------------------------

    async def run(self) -> int:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        began = time.monotonic()
        try:
            await self._start()
            if self.config.baselines:
                await self._baselines()
                await self._broker()
            for scenario in self.config.scenarios:
                await self._scenario(scenario)
            await self._rpcs_per_process()
        except Exception as exc:
            log.exception("the benchmark stopped")
            self.results["failures"].append(f"run: {exc}")
        finally:
            await self._stop()
            self.results["seconds"] = round(time.monotonic() - began, 1)
            self._write()
        return 1 if self.results["failures"] else 0

    async def _start(self) -> None:
        config = self.config
        self.results["machine"] = _machine()
        services = available_services()
        if "catalog" not in services:
            raise RuntimeError("the catalog service is missing: nothing to benchmark")
        self.results["services"] = services
        settings = _bench_settings(config, self.data_dir)
        self.results["settings"] = _public_settings(settings)
        self.results["budget_settings"] = dict(BUDGET_SETTINGS)
        # k6 reads it from the environment: "createOrder" runs the checkout of reports before carts.
        self.results["checkout_flow"] = os.environ.get("CHECKOUT_FLOW") or "cart"
        log.info("starting PostgreSQL, Redis, the broker (data in %s)", self.data_dir)
        # Always the embedded servers: the bench must not load 100,000 products into someone's database.
        self.infra = await asyncio.to_thread(Infrastructure(self.data_dir, environ={}).start)
        await prepare(self.infra, services, partitions=max(3, config.replicas))
        self.results["machine"]["postgres"] = await _postgres_version(self.infra.database_url("account"))
        log.info("seeding %d products", config.products)
        catalog = await seed_catalog(self.infra.database_url("catalog"), config.products)
        self.results["seed"] = {"products": catalog.count, "seconds": round(catalog.seconds, 1)}
        shipping_method = await seed_shop_terms(self.infra.database_url("order"))
        placement = free_ports(config.replicas)
        ports = placement["ports"]
        self.results["replicas"] = config.replicas
        self.platform = Platform(
            self.infra,
            services,
            **placement,
            extra_env=settings,
            log_dir=self.data_dir / "logs",
        )
        log.info("starting %s and the gateway", ", ".join(services))
        await self.platform.start(timeout=120)
        self.graphql_url = f"http://127.0.0.1:{ports['gateway']}/graphql"
        log.info("registering %d shoppers (bcrypt cost %d)", config.shoppers, config.bcrypt_rounds)
        began = time.monotonic()
        shoppers = await register_shoppers(self.graphql_url, config.shoppers)
        self.results["seed"]["shoppers"] = len(shoppers)
        self.results["seed"]["shoppers_seconds"] = round(time.monotonic() - began, 1)
        self.k6_data = self.data_dir / "k6-data.json"
        self.k6_data.write_text(
            json.dumps(
                {
                    "graphql_url": self.graphql_url,
                    "categories": catalog.category_slugs,
                    "checkout_product_ids": catalog.checkout_product_ids,
                    "shipping_method": shipping_method,
                    "search_terms": catalog.search_terms,
                    "shoppers": [
                        {"email": s.email, "password": s.password, "token": s.access_token} for s in shoppers
                    ],
                }
            )
        )
        self.topics = measure.TopicCounter(self.infra.kafka_bootstrap_servers)
        await self.topics.start()

    async def _stop(self) -> None:
        if self.topics is not None:
            with contextlib.suppress(Exception):
                await self.topics.stop()
        if self.platform is not None:
            await asyncio.to_thread(self.platform.stop)
        if self.infra is not None:
            await asyncio.to_thread(self.infra.stop)
        if not self.config.keep_data and not self.results["failures"]:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif self.data_dir.exists():
            log.warning("data and logs kept in %s", self.data_dir)

    async def _rpcs_per_process(self) -> None:
        """RPCs each service process answered over the whole run: with replicas, each one's share."""
        platform = self.platform
        assert platform is not None
        ports = {
            name: platform.metrics_port(name)
            for service in platform.services
            for name in platform.process_names(service)
        }
        try:
            self.results["rpcs_per_process"] = await measure.process_rpcs(ports)
        except Exception as exc:
            log.exception("reading the processes' RPC counts failed")
            self.results["failures"].append(f"RPCs per process: {exc}")

    # -- process groups --------------------------------------------------------------------------------

    def groups(self) -> dict[str, list[int]]:
        """{process name: [pids]} of everything on the machine that takes part in a run."""
        groups: dict[str, list[int]] = {}
        if self.platform is not None:
            for name, process in list(self.platform.processes.items()):
                groups[name] = [process.popen.pid]
        if self.infra is not None:
            for name, server in (
                ("postgres", self.infra.postgres),
                ("redis", self.infra.redis),
                ("broker", self.infra.broker),
            ):
                if server is not None and server.pid is not None:
                    groups[name] = [server.pid]
        # This process: the sampler, and the mailbox (SMTP server) that notification sends to.
        groups["bench (mailbox)"] = [os.getpid()]
        groups.update(self.extra_groups)
        return groups

    def _sampler(self) -> measure.ProcessSampler:
        return measure.ProcessSampler(self.groups, with_children={"postgres"})

    def _k6_started(self, pid: int) -> None:
        self.extra_groups["k6"] = [pid]

    # -- baselines -----------------------------------------------------------------------------------

    async def _baselines(self) -> None:
        config = self.config
        baselines = self.results["baselines"]
        # Login is compared with raw bcrypt, so the HTTP and gRPC baselines run at the other levels only.
        levels = sorted(config.levels)
        for kind, script in (("hello", "hello"), ("grpc_echo", "grpc_echo")):
            port = free_port()
            server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.baselines",
                "hello" if kind == "hello" else "echo",
                "--port",
                str(port),
                start_new_session=True,
            )
            self.extra_groups[kind] = [server.pid]
            try:
                await _wait_port(port, server)
                env = (
                    {"TARGET": f"http://127.0.0.1:{port}/"}
                    if kind == "hello"
                    else {"TARGET": f"127.0.0.1:{port}", "PROTO_DIR": str(measure.BENCH_DIR)}
                )
                rows = {}
                await self._k6(script, levels[-1], config.warmup, env)
                for vus in levels:
                    with self._sampler() as sampler:
                        result = await self._k6(script, vus, config.duration, env)
                    rows[str(vus)] = measure.summarize(result, duration=config.duration)
                    rows[str(vus)]["processes"] = sampler.result()
                baselines[kind] = {"levels": rows}
                log.info("baseline %s: %s", kind, {v: r["requests_per_second"] for v, r in rows.items()})
            except Exception as exc:
                log.exception("baseline %s failed", kind)
                self.results["failures"].append(f"baseline {kind}: {exc}")
            finally:
                server.terminate()
                try:
                    await asyncio.wait_for(server.wait(), 10)
                except TimeoutError:
                    server.kill()
                    await server.wait()
                self.extra_groups.pop(kind, None)
        assert self.infra is not None
        loops = {
            "asyncpg": [
                "pg",
                "--dsn",
                plain_dsn(self.infra.database_url("catalog")),
                "--seconds",
                str(config.baseline_seconds),
                "--concurrency",
                str(max(config.levels)),
            ],
            "bcrypt": [
                "bcrypt",
                "--rounds",
                str(config.bcrypt_rounds),
                "--seconds",
                str(config.baseline_seconds),
                "--threads",
                str(measure.cores()),
            ],
        }
        for kind, argv in loops.items():
            try:
                baselines[kind] = await _json_subprocess([sys.executable, "-m", "bench.baselines", *argv])
                log.info("baseline %s: %.1f/s", kind, baselines[kind]["per_second"])
            except Exception as exc:
                log.exception("baseline %s failed", kind)
                self.results["failures"].append(f"baseline {kind}: {exc}")

    async def _broker(self) -> None:
        assert self.infra is not None
        try:
            with self._sampler() as sampler:
                result = await measure.broker_throughput(
                    self.infra.kafka_bootstrap_servers, self.config.broker_events
                )
            result["processes"] = sampler.result()
            self.results["broker"] = result
            log.info("broker: %s events/s end to end", result["end_to_end_per_second"])
        except Exception as exc:
            log.exception("broker throughput failed")
            self.results["failures"].append(f"broker: {exc}")

    # -- scenarios -----------------------------------------------------------------------------------

    async def _scenario(self, scenario: str) -> None:
        config = self.config
        levels = config.levels_for(scenario)
        ops = SCENARIO_OPS[scenario]
        entry: dict[str, Any] = {"levels": {}}
        self.results["scenarios"][scenario] = entry
        env = {"BENCH_DATA": str(self.k6_data)}
        script = config.script_of(scenario)
        try:
            await self._response_cache(on=script == scenario)
            with self._sampler() as warm:
                await self._k6(script, max(levels), config.warmup, env)
            await self._settle()
            for vus in levels:
                profiling = scenario in config.profile and vus == max(levels)
                spies = self._start_profiles(scenario, warm.result()) if profiling else []
                before, cache_before = await self._offsets(), await self._cache_counts()
                with self._sampler() as sampler:
                    result = await self._k6(script, vus, config.duration, env)
                after, cache_after = await self._offsets(), await self._cache_counts()
                row = measure.summarize(result, duration=config.duration, ops=ops)
                row["processes"] = sampler.result()
                row["machine_cpu_percent"] = sampler.machine_cpu_percent
                row["events"] = _event_rates(before, after, sampler.elapsed)
                row["response_cache"] = measure.hit_ratio(cache_before, cache_after, on=script == scenario)
                if spies:
                    row["profiles"] = await asyncio.to_thread(self._finish_profiles, spies)
                entry["levels"][str(vus)] = row
                log.info(
                    "%s @%d VUs: %.1f req/s, p95 %.1f ms, errors %d",
                    scenario,
                    vus,
                    row["requests_per_second"],
                    row["latency_ms"]["p95"],
                    row["errors"],
                )
                await self._settle()
        except Exception as exc:
            log.exception("scenario %s failed", scenario)
            entry["failed"] = str(exc)
            self.results["failures"].append(f"{scenario}: {exc}")

    async def _response_cache(self, *, on: bool) -> None:
        """Restart the gateway with its response cache on or off, when it is not so already."""
        platform = self.platform
        assert platform is not None
        setting = {"GATEWAY_RESPONSE_CACHE": "true" if on else "false"}
        if (
            platform.process_env.get("gateway", {}).get("GATEWAY_RESPONSE_CACHE", "true")
            == setting["GATEWAY_RESPONSE_CACHE"]
        ):
            return
        platform.process_env["gateway"] = {**platform.process_env.get("gateway", {}), **setting}
        log.info("restarting the gateway with its response cache %s", "on" if on else "off")
        await platform.restart("gateway")

    async def _cache_counts(self) -> tuple[float, float] | None:
        """The gateway's response cache hits and misses so far; None when they cannot be read."""
        assert self.platform is not None
        try:
            return await measure.response_cache_counts(self.platform.metrics_port("gateway"))
        except Exception as exc:  # a count we cannot take is not a failed scenario
            log.warning("cannot read the response cache's counts: %s", exc)
            return None

    async def _k6(self, script: str, vus: int, duration: float, env: dict[str, str]) -> measure.K6Result:
        try:
            return await measure.run_k6(
                script, vus=vus, duration=duration, env=env, workdir=self.data_dir, on_start=self._k6_started
            )
        finally:
            self.extra_groups.pop("k6", None)

    async def _offsets(self) -> dict[str, int]:
        if self.topics is None:
            return {}
        try:
            return await self.topics.offsets()
        except Exception as exc:  # a count we cannot take is not a failed scenario
            log.warning("cannot read topic offsets: %s", exc)
            return {}

    async def _settle(self, timeout: float = 15.0) -> None:
        """Wait until the platform stopped publishing (sagas of the last run finished), within reason."""
        deadline = time.monotonic() + timeout
        previous = await self._offsets()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            current = await self._offsets()
            if current == previous:
                return
            previous = current

    def _start_profiles(
        self, scenario: str, warm: dict[str, dict[str, float]]
    ) -> list[tuple[str, Path, Any]]:
        """py-spy on the two busiest Python processes of the warm-up, for the measured run."""
        groups = self.groups()
        spies = []
        for name in warm:
            pids = groups.get(name, [])
            if len(pids) != 1 or not measure.is_python(pids[0]) or pids[0] == os.getpid():
                continue
            output = self.out / f"profile-{scenario}-{name}.svg"
            spies.append((name, output, measure.start_profile(pids[0], output, self.config.duration)))
            if len(spies) == 2:
                break
        return spies

    def _finish_profiles(self, spies: list[tuple[str, Path, Any]]) -> dict[str, str]:
        profiles = {}
        for name, output, process in spies:
            problem = measure.finish_profile(process)
            profiles[name] = output.name if not problem and output.exists() else f"failed: {problem}"
        return profiles

    # -- output --------------------------------------------------------------------------------------

    def _write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["goals"] = report.goals(self.results)
        self.results["bounds"] = report.bounds(self.results)
        try:
            self.results["charts"] = report.charts(self.results, self.out)
        except Exception as exc:
            log.exception("charts failed")
            self.results["failures"].append(f"charts: {exc}")
            self.results["charts"] = []
        (self.out / "results.json").write_text(json.dumps(self.results, indent=2))
        (self.out / "report.md").write_text(report.markdown(self.results))
        log.info("report written to %s", self.out / "report.md")
        if self.config.update_docs:
            readme = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
            if report.update_docs(readme, self.results):
                log.info("docs/benchmarks.md's table updated")
            else:
                log.warning("docs/benchmarks.md has no benchmark markers; not updated")


# --- helpers --------------------------------------------------------------------------------------


def _event_rates(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, Any]:
    per_topic = {
        topic: after[topic] - before.get(topic, 0) for topic in after if after[topic] - before.get(topic, 0)
    }
    total = sum(per_topic.values())
    return {"total": total, "per_second": round(total / max(seconds, 1e-9), 1), "per_topic": per_topic}


async def _wait_port(port: int, process: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"the baseline server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout}s")
        await asyncio.sleep(0.05)


async def _json_subprocess(argv: list[str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(stderr.decode(errors="replace")[-2000:])
    return json.loads(stdout.decode().strip().splitlines()[-1])


async def _postgres_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    k6_version = ""
    with contextlib.suppress(Exception):
        k6_version = subprocess.run(  # noqa: S603 - the bench extra's k6
            [measure.tool("k6"), "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    return {
        "cpus": measure.cores(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": host.python_version(),
        "os": f"{host.system()} {host.release()}",
        "k6": k6_version,
    }


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv, description=__doc__ or "")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    if not config.smoke and os.environ.get("ACCOUNT_BCRYPT_ROUNDS"):
        log.warning(
            "ignoring ACCOUNT_BCRYPT_ROUNDS=%s: the benchmark measures the default cost",
            os.environ["ACCOUNT_BCRYPT_ROUNDS"],
        )
    # The platform's processes inherit our environment: only the bench's own settings may steer them.
    for name in ("ACCOUNT_BCRYPT_ROUNDS", "ECOMMERCE_ENV", "ECOMMERCE_DATA_DIR"):
        os.environ.pop(name, None)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        code = runner(cancelled_on_signals(Bench(config).run()))
    except asyncio.CancelledError:
        code = 130  # stopped by a signal, after stopping everything it had started
    sys.exit(code)


if __name__ == "__main__":
    main()
