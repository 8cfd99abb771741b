"""From the chaos run's results to report.md and the README's table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

README_START = "<!-- chaos:start -->"
README_END = "<!-- chaos:end -->"
# A run with several processes of each service has a table of its own.
REPLICAS_START = "<!-- chaos-replicas:start -->"
REPLICAS_END = "<!-- chaos-replicas:end -->"


def _processes(config: dict[str, Any]) -> str:
    replicas = config.get("replicas", 1)
    return "one process of each service" if replicas == 1 else f"{replicas} processes of each service"


HEADER = (
    "| fault | orders accepted | in flight at the fault | lost | oversold units | double charges "
    "| duplicate e-mails | internal errors | time to settle (s) | result |\n|---|---|---|---|---|---|---|---|---|---|"
)


def table(results: dict[str, Any]) -> str:
    lines = [HEADER]
    for row in results["faults"]:
        settle = "-" if row["settle_seconds"] is None else f"{row['settle_seconds']:.1f}"
        in_flight = "-" if row.get("in_flight") is None else row["in_flight"]
        lines.append(
            f"| {row['fault']} | {row['accepted']} | {in_flight} | {row['lost']} | {row['oversold']} "
            f"| {row['double_charges']} "
            f"| {row['duplicate_emails']} | {row['internal_errors']} | {settle} "
            f"| {'pass' if row['passed'] else '**FAIL**'} |"
        )
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    config = results["config"]
    verdict = "every fault passed" if results["passed"] else "**some faults failed**"
    parts = [
        f"# Chaos run, {results['date']} ({results['mode']})",
        "",
        f"{len(results['faults'])} faults in {results['seconds']:.0f} s: {verdict}. Orders at "
        f"{config['rate']:g}/s from {config['shoppers']} shoppers over {config['products']} products of "
        f"{config['units']} units, against {_processes(config)}; each fault lasts {config['during']} orders, "
        f"after {config['before']} before "
        f"it and followed by {config['after']}. The invariants are checked over everything the platform "
        "holds after each fault settles, so a later fault also re-checks the orders of earlier ones.",
        "",
        table(results),
        "",
        "*Accepted*: createOrder answered with an order id (the client retries a request that failed for "
        "want of the platform with the same idempotency key). *In flight at the fault*: orders accepted and not yet "
        "CONFIRMED or CANCELLED when the fault was injected. *Lost*: accepted, then missing or never "
        "CONFIRMED/CANCELLED. *Oversold*: units sold beyond the initial stock. *Double charges*: more than "
        "one successful charge at the provider for one order. *Duplicate e-mails*: more than one "
        "distinct confirmation message for one order. *Time to settle*: from the end of the fault until no "
        "order, payment, reservation, e-mail or event is in flight and every consumer group has caught up.",
        "",
    ]
    for row in results["faults"]:
        parts.append(f"## {row['fault']}: {row['what']}")
        parts.append("")
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
        answers = ", ".join(f"{k} {v}" for k, v in sorted(row["answers"].items()))
        parts.append(f"- all orders so far: {outcomes}")
        parts.append(
            f"- answers to the load during this fault: {answers}; {row['retries']} retries; "
            f"{row['abandoned']} requests never answered"
        )
        parts += [f"- {note}" for note in row["notes"]]
        parts += [f"- **violation**: {v}" for v in row["violations"][:20]]
        parts.append("")
    if results["failures"]:
        parts.append("## The run itself failed")
        parts += [f"- {f}" for f in results["failures"]]
        parts.append("")
    return "\n".join(parts)


def update_docs(readme: Path, results: dict[str, Any]) -> bool:
    text = readme.read_text()
    config = results["config"]
    several = config.get("replicas", 1) > 1
    begin, finish = (REPLICAS_START, REPLICAS_END) if several else (README_START, README_END)
    start, end = text.find(begin), text.find(finish)
    if start < 0 or end < start:
        return False
    option = f" with `--replicas {config['replicas']}`" if several else ""
    summary = (
        f"Latest `make chaos`{option} ({results['date']}, {results['mode']} run, {results['seconds']:.0f} s, "
        f"{config['rate']:g} orders/s, {_processes(config)}):\n\n"
    )
    readme.write_text(text[: start + len(begin)] + "\n" + summary + table(results) + "\n" + text[end:])
    return True
