"""Microsoft.EventGrid: custom topics (ARM), their publish endpoints (data plane) and delivery to local
WebHook subscribers; ``subscriber.py`` is such a subscriber, for tests."""
