"""crossing-monitor: real-time monitor for land-border crossing ports."""

__version__ = "0.1.0"
