"""Stateful fake repository servers for the deposit tests (loopback only, port 0, threads)."""
