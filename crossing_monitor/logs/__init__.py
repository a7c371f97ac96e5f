"""Recorded event logs: reading them (.jsonl, .jsonl.gz, stdin), analysing them, and the table view."""
