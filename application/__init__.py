"""Use cases of timeline-ws and the ports they depend on. No I/O of their own."""
