"""The firehose gateway: every notification on the bus, out to MQTT, WebSocket and SSE.

Each notification becomes a CloudEvents 1.0 JSON event on a hierarchical topic
(``<exchange>/<publisher_id>/<event_type with dots as slashes>``), published to an MQTT
broker and streamed to browsers and terminals, with resume after reconnect and a live web
console. Built on the public API only (``import relaybus``), so it runs on any transport.
Needs the ``relaybus[gateway]`` extra. Start it with ``relaybus firehose`` or embed a
:class:`Gateway`.

Modules: ``topics`` (topic templates, MQTT-style filters), ``events`` (CloudEvents),
``replay`` (the replay buffer), ``hub`` (fan-out with per-client bounded queues), ``tap``
(the listener pool), ``mqtt`` (the MQTT bridge), ``auth`` (tokens), ``publish`` (publishing
through the gateway), ``web`` (HTTP, WebSocket, SSE), ``service`` (all of it together).
"""

from relaybus.gateway.service import Gateway, GatewayOptions

__all__ = ["Gateway", "GatewayOptions"]
