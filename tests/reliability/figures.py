"""The figures every reliability scenario reports, and the table they make."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any


@dataclasses.dataclass
class Figures:
    """What one scenario on one transport measured.

    ``lost`` counts messages confirmed to the sender that never arrived; ``duplicated``
    those that arrived more than once (or, for calls, ran more than once); ``recovery_s``
    how long the system took to serve again after the fault (or to report it).
    """

    scenario: str
    transport: str
    sent: int = 0
    confirmed: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_s: float | None = None
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    checks: dict[str, bool] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def check(self, name: str, ok: bool) -> bool:
        """Record a pass/fail check of the scenario's promise."""
        self.checks[name] = bool(ok)
        return bool(ok)

    def error(self, exc: BaseException | str) -> None:
        self.errors[exc if isinstance(exc, str) else type(exc).__name__.removesuffix(
            "_Remote")] += 1

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def failures(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["errors"] = dict(self.errors)
        data["passed"] = self.passed
        return data


COLUMNS = ("scenario", "transport", "sent", "confirmed", "received", "lost", "duplicated",
           "recovery_s", "errors", "passed")


def markdown(results: list[Figures]) -> str:
    """One Markdown table of every scenario's figures, then the notes."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for f in results:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(f.errors.items())) or "-"
        recovery = "-" if f.recovery_s is None else f"{f.recovery_s:.2f}"
        verdict = "yes" if f.passed else "NO: " + ", ".join(f.failures())
        lines.append(f"| {f.scenario} | {f.transport} | {f.sent} | {f.confirmed} | "
                     f"{f.received} | {f.lost} | {f.duplicated} | {recovery} | {errors} | "
                     f"{verdict} |")
    notes = [f"- {f.scenario} on {f.transport}: {note}" for f in results for note in f.notes]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def as_json(results: list[Figures]) -> str:
    return json.dumps([f.as_dict() for f in results], indent=2)
