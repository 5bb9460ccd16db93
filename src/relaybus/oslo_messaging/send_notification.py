"""``relaybus-oslo-send-notification``: what ``oslo-messaging-send-notification`` does.

Sends one notification from the command line, with the same arguments::

    relaybus-oslo-send-notification --config-file nova.conf --publisher-id compute.h1 \\
        --event-type instance.create.end --topic notifications --priority info '{"id": 1}'

As oslo's tool does, the payload is sent as the text given (not parsed), with an empty
context; the transport comes from ``--transport-url`` or the configuration file's
``[oslo_messaging_notifications] transport_url`` / ``[DEFAULT] transport_url``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from oslo_config import cfg

from relaybus.oslo_messaging.notify.drivers import DRIVERS
from relaybus.oslo_messaging.notify.notifier import Notifier, get_notification_transport

__all__ = ["main"]

PRIORITIES = ("info", "audit", "warn", "error", "critical", "sample")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaybus-oslo-send-notification",
                                     description="Oslo.messaging notification sending")
    parser.add_argument("--config-file", help="Path to configuration file")
    parser.add_argument("--transport-url", help="Transport URL")
    parser.add_argument("--publisher-id", help="Publisher ID")
    parser.add_argument("--event-type", default="test", help="Event type")
    parser.add_argument("--topic", nargs="*", help="Topic to send to")
    parser.add_argument("--priority", default="info", choices=PRIORITIES, help="Priority")
    parser.add_argument("--driver", default="messagingv2", choices=sorted(DRIVERS),
                        help="Notification driver")
    parser.add_argument("payload", help="the notification payload")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line) and send the notification."""
    args = _parser().parse_args(argv)
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[args.config_file] if args.config_file else None)
    transport = get_notification_transport(conf, url=args.transport_url)
    try:
        notifier = Notifier(transport, args.publisher_id, driver=args.driver,
                            topics=args.topic)
        # oslo's tool sends the priority as given (lower case), not as Notifier.info() does
        notifier._notify({}, args.event_type, args.payload, args.priority)
    finally:
        transport.cleanup()


if __name__ == "__main__":
    main()
