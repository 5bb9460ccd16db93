"""Exceptions the fleet's clients may rebuild (listed in ``allowed_remote_exmods``),
written the way nova writes ``nova.exception``: a message template and keyword arguments."""

from __future__ import annotations

from typing import Any


class FleetException(Exception):
    """Base of the fleet's exceptions; ``kwargs`` travel with the remote error."""

    msg_fmt = "An unknown exception occurred."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        super().__init__(message or self.msg_fmt % kwargs)


class InstanceNotFound(FleetException):
    msg_fmt = "Instance %(instance_id)s could not be found."

