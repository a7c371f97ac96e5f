"""The domain alone: wire format, per-port state, fold, report, snapshot, catalogue.

No I/O and nothing else of the project: the live worker and `analyze` share it, so they agree.
"""
