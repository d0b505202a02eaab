"""Checks that talk to the running service."""
