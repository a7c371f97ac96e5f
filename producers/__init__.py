"""Simulated gate sensors, recording and replay (`crossing-monitor simulate | record | replay`).

`model` is the discrete-event model of one port, `faults` breaks its sensors on demand,
`scenarios` names the published figures, `publish` puts bytes on Kafka fast, `logs` writes
recorded logs; `simulate`, `record` and `replay` are the command handlers.
"""
