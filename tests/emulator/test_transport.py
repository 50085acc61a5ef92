"""The emulator's HTTPS transport: an answer leaves at once. Written as its headers and then its body, a body held
back by Nagle's algorithm until the client's delayed ACK of the headers (40 ms on Linux) made every ARM call of
every test take ~45 ms instead of ~2 ms."""

from __future__ import annotations

import http.client
import ssl
import statistics
import time
from urllib.parse import urlsplit


def test_answers_on_a_kept_alive_connection_are_not_held_for_a_delayed_ack(az):
    url = urlsplit(az.base_url)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ssl.create_default_context(cafile=az.ca_path))
    try:
        took = []
        for _ in range(21):
            start = time.perf_counter()
            conn.request("GET", "/_emulator/health")
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read()  # a body, after the headers, on the same connection
            took.append(time.perf_counter() - start)
    finally:
        conn.close()
    assert statistics.median(took[1:]) < 0.02, [round(t * 1000, 1) for t in took]  # held back, it is >= 40 ms
