"""Alerts: CloudEvents 1.0 published to an Event Grid custom topic, each once per change."""
