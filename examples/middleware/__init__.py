"""Middleware examples: a tenant check from the context, a per-endpoint rate limit."""
