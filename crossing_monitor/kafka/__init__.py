"""Kafka for every component: TLS/SASL settings, topic administration, and a local broker for development."""
