"""Streaming protocols spoken by kubectl (SPDY/3.1 sessions, port-forward over them)."""
