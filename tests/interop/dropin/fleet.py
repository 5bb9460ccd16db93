"""A nova-style service fleet written against oslo.messaging's API.

    python fleet.py [--messaging {oslo,relaybus}] --config-file fleet.conf server --host host1
                    [--listeners]
    python fleet.py [--messaging {oslo,relaybus}] --config-file fleet.conf client

``--messaging`` (or ``FLEET_MESSAGING``) picks ``import oslo_messaging`` or ``from relaybus
import oslo_messaging``; nothing else differs. Everything else comes from the config file,
read by oslo.config into the global ``cfg.CONF`` the way nova reads nova.conf.

A server prints ``{"ready": true}`` once it listens and ``{"stopped": host}`` after its
stdin closes and it has stopped. The client runs every step, records each outcome (the
result, or what was raised), and prints the record as one JSON line: two fleets behave
the same when their records are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messaging", choices=["oslo", "relaybus"],
                        default=os.environ.get("FLEET_MESSAGING", "oslo"))
    parser.add_argument("--config-file", action="append", default=[],
                        help="oslo.config files, as every OpenStack service takes them")
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--host", default="host1")
    parser.add_argument("--listeners", action="store_true",
                        help="also run the filtered and the batch notification listener")
    args = parser.parse_args()
    os.environ["FLEET_MESSAGING"] = args.messaging  # read by fleet_messaging on import

    from oslo_config import cfg

    cfg.CONF.register_opts([cfg.StrOpt("topic", default="compute")], group="fleet")
    cfg.CONF([arg for path in args.config_file for arg in ("--config-file", path)],
             project="fleet")
    if args.role == "server":
        from fleet_server import serve

        serve(cfg.CONF, args.host, listeners=args.listeners)
    else:
        from fleet_client import run

        print(json.dumps(run(cfg.CONF), sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
