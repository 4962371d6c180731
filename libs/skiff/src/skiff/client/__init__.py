"""Clients of the Skiff API server."""
