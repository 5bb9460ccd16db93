"""A TripleO-like workflow whose messages reach the browser through the firehose.

    python -m examples.tripleo.workflow [--bus URL] [--http 127.0.0.1:8765]

The seed (openstack-dev, "Zaqar messages standardization", 2016) asked for one place every
workflow reports to, each message naming itself and carrying its execution id::

    {"body": {"name": "tripleo.validations.v1.run_validation",
              "execution_id": "123123123", "data": {}}}

so that a UI which refreshes the page still knows where to listen. With relaybus the name is
the notification's event type and ``{execution_id, data}`` its payload; the firehose makes
each one a CloudEvent on ``tripleo/tripleo.mistral/tripleo/validations/v1/run_validation``.
A UI subscribes to ``tripleo/#`` (one place for every workflow), picks its execution by
``data.execution_id``, and after a refresh resumes from the last event id it saw.

On ``memory://`` (the default) the gateway runs in this process and the console URL is
printed; on a real broker, run ``relaybus firehose --bus URL`` beside it instead
(``--no-gateway``). Workflows run one after another until Ctrl-C (or ``--executions N``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import uuid
from typing import Any

import msgspec

import relaybus
from relaybus import Service, Target

EXCHANGE = "tripleo"
PUBLISHER = "tripleo.mistral"
RUN_VALIDATION = "tripleo.validations.v1.run_validation"
RUN_VALIDATIONS = "tripleo.validations.v1.run_validations"
VALIDATIONS = ("check-ntp", "check-disk-space", "check-network-gateway", "check-undercloud-ram")


class ValidationStatus(msgspec.Struct):
    """Where one validation of an execution stands."""

    validation: str
    status: str  # RUNNING, SUCCESS or FAILED
    message: str = ""


class ValidationMessage(msgspec.Struct):
    """The body the seed asked for: the execution it belongs to, and its data."""

    execution_id: str
    data: ValidationStatus


class ExecutionMessage(msgspec.Struct):
    """The end of an execution: how many validations passed."""

    execution_id: str
    data: dict[str, Any]


workflows = Service(
    name="tripleo-workflows", target=Target(topic="tripleo", exchange=EXCHANGE), endpoints=[],
    emits={RUN_VALIDATION: ValidationMessage, RUN_VALIDATIONS: ExecutionMessage},
    description="TripleO workflow progress, one message per step, for UIs to follow.")


async def run_validations(notifier: relaybus.Notifier, execution_id: str,
                          pause: float = 0.0) -> dict[str, Any]:
    """One execution of the validations workflow, reporting every step."""
    ctxt = {"request_id": f"req-{execution_id}"}
    failed = []
    for index, name in enumerate(VALIDATIONS):
        await notifier.info(ctxt, RUN_VALIDATION, ValidationMessage(
            execution_id, ValidationStatus(name, "RUNNING")))
        await asyncio.sleep(pause)  # the validation "runs"
        ok = (int(execution_id[:6], 16) + index) % 7 != 0
        if not ok:
            failed.append(name)
        status = ValidationStatus(name, "SUCCESS" if ok else "FAILED",
                                  "" if ok else f"{name} failed on undercloud-0")
        await (notifier.info if ok else notifier.error)(
            ctxt, RUN_VALIDATION, ValidationMessage(execution_id, status))
    summary = {"status": "FAILED" if failed else "SUCCESS", "failed": failed,
               "total": len(VALIDATIONS)}
    await notifier.info(ctxt, RUN_VALIDATIONS, ExecutionMessage(execution_id, summary))
    return summary


async def main(url: str | None, http: str, gateway: bool, executions: int,
               pause: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with await relaybus.connect(url, control_exchange=EXCHANGE) as bus:
        notifier = bus.notifier(PUBLISHER, topics=["notifications"])
        async with contextlib.AsyncExitStack() as stack:
            if gateway:
                from relaybus.gateway import Gateway, GatewayOptions

                firehose = await stack.enter_async_context(
                    Gateway(bus, GatewayOptions(http=http)).running())
                print(f"tripleo workflow: console {firehose.url}?topic=tripleo/%23", flush=True)
            done = 0
            while not stop.is_set() and (executions == 0 or done < executions):
                execution_id = uuid.uuid4().hex[:12]
                summary = await run_validations(notifier, execution_id, pause)
                print(f"execution {execution_id}: {summary['status']}", flush=True)
                done += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause * 4):
                        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bus", default=None, help="transport URL (default memory://)")
    parser.add_argument("--http", default="127.0.0.1:8765", help="the embedded gateway's host:port")
    parser.add_argument("--no-gateway", action="store_true",
                        help="do not embed the gateway (run `relaybus firehose` instead)")
    parser.add_argument("--executions", type=int, default=0, help="stop after N (0: never)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds per validation")
    args = parser.parse_args()
    embed = not args.no_gateway
    asyncio.run(main(args.bus, args.http, embed, args.executions, args.pause))
