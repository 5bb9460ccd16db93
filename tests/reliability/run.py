"""Run the reliability scenarios and print one figures table.

    python tests/reliability/run.py [--scenario NAME]... [--transport memory|rabbit|nats]...
                                    [--json] [--output FILE]

Needs the brokers on loopback (see README). Exit status 0 when every scenario kept its
promise. The table goes into docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cleanup import delete_nats_streams
from figures import Figures, as_json, markdown
from scenarios import SCENARIOS
from transports import URLS, reachable


async def run_all(names: list[str], transports: list[str]) -> list[Figures]:
    results = []
    for name in names:
        scenario, supported = SCENARIOS[name]
        for transport in supported:
            if transports and transport not in transports:
                continue
            if not reachable(transport):
                figures = Figures(name, transport)
                figures.check("broker reachable", False)
                results.append(figures)
                continue
            print(f"running {name} on {transport}...", file=sys.stderr, flush=True)
            try:
                results.append(await scenario(transport, URLS[transport]))
            except Exception as exc:  # noqa: BLE001 - a crashed scenario is a failed one
                figures = Figures(name, transport)
                figures.error(exc)
                figures.check(f"scenario ran ({type(exc).__name__}: {exc})", False)
                results.append(figures)
            finally:
                if transport == "nats":
                    await delete_nats_streams(URLS[transport])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), default=[])
    parser.add_argument("--transport", action="append", choices=sorted(URLS), default=[])
    parser.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the scenarios provoke warnings on purpose
    results = asyncio.run(run_all(args.scenario or list(SCENARIOS), args.transport))
    text = as_json(results) if args.json else markdown(results)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    sys.exit(0 if all(f.passed for f in results) else 1)


if __name__ == "__main__":
    main()
