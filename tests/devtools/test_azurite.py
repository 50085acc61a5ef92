"""Azurite, as the tests and the demo run it: queues with base64 messages (as Functions expects)
and tables, on 127.0.0.1, telemetry off."""

from __future__ import annotations

import uuid


def test_queue_round_trip_with_base64_messages(azurite):
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

    name = f"q{uuid.uuid4().hex[:12]}"
    queue = QueueClient.from_connection_string(azurite.connection_string, name,
                                               message_encode_policy=BinaryBase64EncodePolicy(),
                                               message_decode_policy=BinaryBase64DecodePolicy())
    queue.create_queue()
    queue.send_message(b'{"job": "snapshot", "vm": "vm-1"}')
    [message] = list(queue.receive_messages(max_messages=1))
    assert message.content == b'{"job": "snapshot", "vm": "vm-1"}'
    queue.delete_message(message)
    assert queue.get_queue_properties().approximate_message_count == 0


def test_table_round_trip(azurite):
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table_if_not_exists(f"t{uuid.uuid4().hex[:12]}")
    table.upsert_entity({"PartitionKey": "run", "RowKey": "1", "outcome": "done"})
    assert table.get_entity("run", "1")["outcome"] == "done"
