"""Adapters: one module per technology and role, each implementing a port of ``application.ports``."""
