"""Contracts: service descriptions, schemas from type hints, AsyncAPI documents."""

from relaybus.contracts.asyncapi import asyncapi_document
from relaybus.contracts.service import Service

__all__ = ["Service", "asyncapi_document"]
