"""A tenant check: every request and notification must carry a tenant this service serves.

The sending side stamps the tenant of the current task (a context variable) into the
message context; the handling side reads it, rejects strangers with a typed error, and adds
what it checked to the context, so endpoints see ``ctxt["tenant_checked"]``::

    bus = await relaybus.connect(url, middleware=[TenantCheck({"acme", "globex"})])
    CURRENT_TENANT.set("acme")
    await client.call({}, "run_instance", ...)       # carries tenant=acme

A caller from another tenant gets :class:`TenantRejected` back (rebuilt as itself when
``examples.middleware.tenant`` is in its ``allowed_remote_exmods``, else a RemoteError
naming it); a rejected cast or notification is counted and logged once by its consumer.
"""

from __future__ import annotations

import contextvars
from collections.abc import Collection
from typing import Any

import relaybus
from relaybus.middleware import Next

CURRENT_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tenant", default=None)


class TenantRejected(relaybus.Rejected):
    """The message's tenant is not served here (or it carries none)."""


class TenantCheck(relaybus.Middleware):
    """Stamps the current tenant on what is sent; refuses what others' tenants send.

    Args:
        tenants: the tenants this service serves.
        key: the context key that holds the tenant.
    """

    def __init__(self, tenants: Collection[str], *, key: str = "tenant") -> None:
        self.tenants = frozenset(tenants)
        self.key = key

    def _stamp(self, context: dict[str, Any]) -> None:
        tenant = CURRENT_TENANT.get()
        if tenant is not None:
            context.setdefault(self.key, tenant)

    def _check(self, context: dict[str, Any]) -> None:
        tenant = context.get(self.key)
        if tenant not in self.tenants:
            raise TenantRejected(f"tenant {tenant!r} is not served here")
        context["tenant_checked"] = True  # the endpoint sees what was checked

    async def send_request(self, request: relaybus.RequestInfo,
                           call_next: Next[relaybus.RequestInfo]) -> Any:
        self._stamp(request.context)
        return await call_next(request)

    async def send_notification(self, notification: relaybus.NotificationInfo,
                                call_next: Next[relaybus.NotificationInfo]) -> Any:
        self._stamp(notification.context)
        return await call_next(notification)

    async def handle_request(self, request: relaybus.RequestInfo,
                             call_next: Next[relaybus.RequestInfo]) -> Any:
        self._check(request.context)
        return await call_next(request)

    async def handle_notification(self, notification: relaybus.NotificationInfo,
                                  call_next: Next[relaybus.NotificationInfo]) -> Any:
        self._check(notification.context)
        return await call_next(notification)
