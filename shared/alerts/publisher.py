"""Publishing CloudEvents to an Event Grid custom topic with the app's identity (Bearer, Entra ID)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TopicPublisher:
    def __init__(self, endpoint: str, credential: Callable[[], Any], ca_bundle: str | None = None):
        self.endpoint, self.credential, self.ca_bundle = endpoint, credential, ca_bundle
        self._client: Any = None

    def __call__(self, events: list[dict[str, Any]]) -> None:
        if self._client is None:
            from azure.eventgrid import EventGridPublisherClient

            self._client = EventGridPublisherClient(self.endpoint, self.credential())
            # send() offers its per-call options to each event's model too, which warns that it ignores them
            # (they do reach the pipeline): a warning per event per publish, not worth an operator's eye.
            import logging

            logging.getLogger("azure.eventgrid._legacy._generated._serialization").setLevel(logging.ERROR)
        # azure-eventgrid 4.22 (basic topics) drops constructor options such as connection_verify; per-call
        # options reach the pipeline, so a local CA is given with each send.
        options = {"connection_verify": self.ca_bundle} if self.ca_bundle else {}
        from ..azure.clients import USER_AGENT

        self._client.send(events, content_type="application/cloudevents-batch+json; charset=utf-8",
                          user_agent=USER_AGENT, **options)
