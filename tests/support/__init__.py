"""Shared test infrastructure: the test PKI, databases on SQLite and PostgreSQL, a running server."""
