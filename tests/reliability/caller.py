"""A caller process for scenario 4: sends one slow call and waits (until it is killed)."""

from __future__ import annotations

import asyncio
import sys

import relaybus
from relaybus import Target


async def main(url: str, topic: str, token: str) -> None:
    async with await relaybus.connect(url) as bus:
        await bus.rpc_client(Target(topic=topic), timeout=60).call({}, "slow", seconds=3,
                                                                   token=token)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
