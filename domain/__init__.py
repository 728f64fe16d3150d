"""The timeline-ws domain: connections, verified identities, errors and the client protocol.

Pure Python and attrs only: no I/O, no clock, no environment.
"""
