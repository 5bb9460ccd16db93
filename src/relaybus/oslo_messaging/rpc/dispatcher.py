"""``RPCDispatcher``, access policies and ping: oslo's endpoint rules on relaybus's server.

relaybus's own dispatcher does the resolving (namespace, version, method, in endpoint
order: oslo's rules). Each oslo endpoint is shown to it through a proxy per accepted
namespace (``legacy_namespaces`` too) whose methods are the endpoint's, filtered by the
oslo access policy, with :class:`ExpectedException` unwrapped to the exception it holds.
"""

from __future__ import annotations

import abc
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import relaybus
from relaybus.oslo_messaging.serializer import NoOpSerializer, Serializer
from relaybus.oslo_messaging.server import MessagingServerError
from relaybus.oslo_messaging.target import Target
from relaybus.rpc import ping as rpc_ping

__all__ = ["DefaultRPCAccessPolicy", "ExpectedException", "ExplicitRPCAccessPolicy",
           "LegacyRPCAccessPolicy", "NoSuchMethod", "PingEndpoint", "RPCAccessPolicyBase",
           "RPCDispatcher", "RPCDispatcherError", "UnsupportedVersion"]

LOG = logging.getLogger(__name__)
# the ping is relaybus's own (one implementation for both APIs); its endpoint answers on
# the event loop and is handed to relaybus's server as it is, not through an oslo proxy
PING_METHOD = rpc_ping.PING_METHOD
PingEndpoint = rpc_ping.PingEndpoint


class ExpectedException(Exception):
    """Wraps the exception being handled; the caller gets the wrapped one."""

    def __init__(self) -> None:
        self.exc_info = sys.exc_info()


class RPCDispatcherError(MessagingServerError):
    """Base class of the dispatcher errors."""


class NoSuchMethod(RPCDispatcherError, relaybus.NoSuchMethod):
    """No endpoint exposes the method."""

    def __init__(self, method: str) -> None:
        relaybus.NoSuchMethod.__init__(self, method)


class UnsupportedVersion(RPCDispatcherError, relaybus.UnsupportedVersion):
    """No endpoint serves the namespace and version."""

    def __init__(self, version: str | None, method: str | None = None) -> None:
        Exception.__init__(self, f"Endpoint does not support RPC version {version}"
                           + (f". Attempted method: {method}" if method else ""))
        self.version = version
        self.method = method


class RPCAccessPolicyBase(metaclass=abc.ABCMeta):
    """Decides which endpoint methods may be called remotely."""

    @abc.abstractmethod
    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """Whether ``endpoint.method`` may be invoked by RPC."""


class LegacyRPCAccessPolicy(RPCAccessPolicyBase):
    """Every callable, private ones too."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return True


class DefaultRPCAccessPolicy(RPCAccessPolicyBase):
    """Every method whose name does not start with ``_``."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return not method.startswith("_")


class ExplicitRPCAccessPolicy(RPCAccessPolicyBase):
    """Only methods decorated with :func:`~relaybus.oslo_messaging.expose`."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return bool(getattr(getattr(endpoint, method, None), "exposed", False))


class _AllowAll(relaybus.RPCAccessPolicy):
    """The proxies apply the oslo policy themselves; errors keep oslo's exact text."""

    explain_namespace = False

    def is_allowed(self, endpoint: object, name: str, method: Callable[..., Any]) -> bool:
        return True


class _EndpointProxy:
    """One oslo endpoint under one namespace, as relaybus's dispatcher sees it."""

    def __init__(self, endpoint: Any, namespace: str | None, version: str,
                 policy: RPCAccessPolicyBase) -> None:
        self.target = relaybus.Target(namespace=namespace, version=version)
        self._rb_endpoint = endpoint
        self._rb_policy = policy
        self._rb_methods: dict[str, Callable[..., Any]] = {}

    def __relaybus_method__(self, name: str) -> Callable[..., Any] | None:
        """The callable serving ``name`` under oslo's rules, or None (relaybus's hook)."""
        if name.startswith(("_rb_", "__")):
            return None
        found = self._rb_methods.get(name)
        if found is not None:
            return found
        func = getattr(self._rb_endpoint, name, None)
        if func is None or not callable(func) or isinstance(func, type) \
                or not self._rb_policy.is_allowed(self._rb_endpoint, name):
            return None

        def invoke(ctxt: Any, **kwargs: Any) -> Any:
            try:
                return func(ctxt, **kwargs)
            except ExpectedException as exc:
                _, value, tb = exc.exc_info
                assert value is not None
                raise value.with_traceback(tb) from None

        invoke.__name__ = name
        # untyped for relaybus: arguments and results reach the oslo serializer as they are
        invoke.__annotations__ = {}
        self._rb_methods[name] = invoke
        return invoke


class RPCDispatcher:
    """Holds the endpoints, serializer and access policy of an RPC server.

    Args:
        endpoints: endpoint objects; a ``target`` attribute, if any, must be a Target.
        serializer: converts arguments, results and contexts (default: none).
        access_policy: a subclass of :class:`RPCAccessPolicyBase` (the class, not an
            instance), default :class:`DefaultRPCAccessPolicy`.
        ping: add the ``oslo_rpc_server_ping`` endpoint.

    Raises:
        TypeError: an endpoint's ``target`` is not a Target, or a bad access_policy.
    """

    def __init__(self, endpoints: Sequence[Any], serializer: Serializer | None = None,
                 access_policy: type[RPCAccessPolicyBase] | None = None,
                 ping: bool = False) -> None:
        for endpoint in endpoints:
            target = getattr(endpoint, "target", None)
            if target and not isinstance(target, Target):
                raise TypeError("'target' is reserved on endpoints for namespace and "
                                "version filtering and must be an oslo_messaging.Target; "
                                f"do not name an endpoint method 'target': endpoint={endpoint}")
        endpoints = rpc_ping.with_ping(endpoints, ping)
        self.endpoints = endpoints
        self.serializer = serializer or NoOpSerializer()
        if access_policy is None:
            self.access_policy: RPCAccessPolicyBase = DefaultRPCAccessPolicy()
        elif isinstance(access_policy, type) and issubclass(access_policy,
                                                             RPCAccessPolicyBase):
            self.access_policy = access_policy()
        else:
            raise TypeError("access_policy must be a subclass of RPCAccessPolicyBase")

    def relaybus_endpoints(self) -> list[object]:
        """One proxy per endpoint and accepted namespace, in endpoint order (the ping
        endpoint as it is: it is relaybus's own)."""
        proxies: list[object] = []
        for endpoint in self.endpoints:
            if isinstance(endpoint, PingEndpoint):
                proxies.append(endpoint)
                continue
            target = getattr(endpoint, "target", None) or Target()
            for namespace in getattr(target, "accepted_namespaces", [target.namespace]):
                proxies.append(_EndpointProxy(endpoint, namespace, target.version or "1.0",
                                              self.access_policy))
        return proxies

    @staticmethod
    def relaybus_policy() -> relaybus.RPCAccessPolicy:
        return _AllowAll()
