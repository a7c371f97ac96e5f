"""Kafka for every component: which servers, TLS/SASL, topic administration, a local broker for development."""
