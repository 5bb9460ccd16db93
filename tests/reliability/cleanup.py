"""Leave the shared brokers as the scenarios found them."""

from __future__ import annotations

import contextlib

from relaybus.url import parse_url

# unique() names start with "rel_"; as JetStream name parts they start with "rel-".
STREAM_PREFIX = "relaybus_openstack_rel-"


async def delete_nats_streams(url: str, prefix: str = STREAM_PREFIX) -> int:
    """Delete the JetStream streams the scenarios created on the server at ``url``."""
    import nats
    import nats.js.errors

    host = parse_url(url).hosts[0]
    client = await nats.connect(f"nats://{host.hostname}:{host.port or 4222}",
                                allow_reconnect=False)
    deleted = 0
    try:
        jsm = client.jsm()
        for info in await jsm.streams_info():
            if info.config.name and info.config.name.startswith(prefix):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await jsm.delete_stream(info.config.name)
                    deleted += 1
    finally:
        await client.close()
    return deleted
