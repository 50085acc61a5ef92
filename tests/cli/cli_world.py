"""What the CLI tests share: invoking ``vmkeeper`` in-process (click's CliRunner, the static local
credential handed in through the context object, as the demo does), the output schemas, and reading
what local Azure holds (the emulator's call log, Azurite's tables and queues) to prove a command wrote
nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from emulator.testing import StaticCredential
from shared.cli.main import cli
from tests.app import openapi_check

SCHEMAS = json.loads((Path(__file__).with_name("output_schemas.json")).read_text())
WRITES = ("PUT", "PATCH", "DELETE", "POST")
READ_POSTS = ("Microsoft.ResourceGraph/resources/read", "backupValidateOperation")
FAST = {"lro": {"default_seconds": 0.05, "retry_after_ms": 20}}  # as tests/conftest.py's az fixture


def vmkeeper(*args: str, input: str | None = None) -> Result:
    """``input``: what the operator types at a prompt (none: stdin closed, as in a pipeline)."""
    return CliRunner().invoke(cli, list(args), input=input, obj={"credential": StaticCredential()},
                              catch_exceptions=False)


def json_out(result: Result, schema: str | None = None, api_schema: str | None = None) -> Any:
    """stdout as JSON (it must be nothing else), valid against one of the CLI's schemas or the API's."""
    doc = json.loads(result.stdout)
    if schema:
        Draft202012Validator({"$ref": f"#/$defs/{schema}", "$defs": SCHEMAS["$defs"]}).validate(doc)
    if api_schema:
        Draft202012Validator({"$ref": f"#/components/schemas/{api_schema}",
                              "components": openapi_check.DOC["components"]}).validate(doc)
    return doc


def writes(az: Any, since: int) -> list[dict[str, Any]]:
    """ARM writes since a mark in the emulator's call log (Resource Graph queries are POSTs that read)."""
    return [c for c in az.calls(since) if c["method"] in WRITES
            and not any(r in (c.get("operation") or "") + c["path"] for r in READ_POSTS)]


def storage_state(connection_string: str) -> dict[str, Any]:
    """Every table's rows (with their ETags) and every queue's messages, as Azurite holds them now."""
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    state: dict[str, Any] = {}
    tables = TableServiceClient.from_connection_string(connection_string)
    for t in tables.list_tables():
        rows = tables.get_table_client(t.name).list_entities()
        state[f"table:{t.name}"] = sorted((e["PartitionKey"], e["RowKey"], e.metadata["etag"]) for e in rows)
    queues = QueueServiceClient.from_connection_string(connection_string)
    for q in queues.list_queues():
        client = queues.get_queue_client(q.name)
        state[f"queue:{q.name}"] = (client.get_queue_properties().approximate_message_count,
                                    sorted(m.id for m in client.peek_messages(max_messages=32)))
    return state


def settings_file(path: Path, values: dict[str, str]) -> str:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return str(path)
