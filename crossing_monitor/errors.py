"""The one error type that ends a command with a single line for the operator, not a traceback.

Library code (producers, the Kafka helpers, the dashboards) raises it for what the person running
the command can act on: a bad argument, an unreachable broker, a file that cannot be written. The
command line (`crossing_monitor.cli`) prints it and exits 2.
"""


class UserError(Exception):
    """Something the person running the command must fix: printed as one line, exit code 2."""
