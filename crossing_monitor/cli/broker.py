"""`crossing-monitor broker`: fetch Kafka's jars, or run a local broker until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import time

from crossing_monitor.console import speaker
from crossing_monitor.kafka.broker import KAFKA_VERSION, BrokerError, LocalKafka, fetch_jars

_say = speaker("crossing-monitor broker: ")


def main(args: argparse.Namespace) -> int:
    """Fetch the jars; unless --fetch-only, run the broker until SIGINT/SIGTERM and stop it cleanly."""
    if args.fetch_only:
        _say(f"Apache Kafka {KAFKA_VERSION} jars are cached in {fetch_jars(_say)}")
        return 0
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM = Ctrl-C: clean stop
    try:
        with LocalKafka(port=args.port, data_dir=args.data_dir, progress=_say) as kafka:
            try:
                print(f"Kafka broker ready at {kafka.bootstrap} (data: {kafka.data_dir}) — Ctrl-C to stop", flush=True)
                while kafka.alive:
                    time.sleep(0.5)
                code = kafka.proc.returncode if kafka.proc is not None else None
                raise BrokerError(f"the broker stopped unexpectedly (exit code {code}):\n{kafka.log_tail()}")
            except KeyboardInterrupt:
                _say("stopping the broker ...")
        _say("broker stopped")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
