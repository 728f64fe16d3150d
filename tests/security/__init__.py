"""Security tier: attacker-written tests of the real handlers, verifier, logs and Redis transport."""
