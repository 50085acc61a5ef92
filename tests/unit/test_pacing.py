"""The shared write budget: the bucket's arithmetic (pure, property-tested) and the table-backed
bucket under concurrent workers in Azurite (optimistic concurrency: no token granted twice)."""

from __future__ import annotations

import threading
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import pacing


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.integers(1, 5)), max_size=60), st.floats(0.5, 20), st.integers(1, 50))
def test_never_grants_more_than_burst_plus_refill(steps, rate, burst):
    bucket, now, granted = pacing.Bucket(burst, 0.0), 0.0, 0
    for gap, n in steps:
        now += gap
        bucket, wait = pacing.take(bucket, n, now, rate, burst)
        if wait == 0:
            granted += n
        else:
            assert wait > 0
        assert 0 <= bucket.tokens <= burst
    assert granted <= burst + rate * now + 1e-6


def test_arm_headers_shrink_and_block_the_bucket():
    bucket = pacing.observe(pacing.Bucket(100, 0.0), 0.0, remaining=30, retry_after=None)
    assert bucket.tokens == 30 - pacing.RESERVE
    blocked = pacing.observe(bucket, 0.0, remaining=None, retry_after=7)
    _, wait = pacing.take(blocked, 1, 2.0, 10, 100)
    assert wait == 5


def test_table_bucket_is_shared_and_exact_under_contention(azurite):
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(azurite.connection_string, f"b{uuid.uuid4().hex[:10]}")
    frozen = [1000.0]
    budget = pacing.WriteBudget(table, rate=1.0, burst=40, clock=lambda: frozen[0])
    grants: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            if budget.take("sub-a") == 0:
                with lock:
                    grants.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 40  # 80 asks, a frozen clock: exactly the burst, never more
    assert budget.take("sub-a") == 1.0  # one token needs one second at 1/s
    assert budget.take("sub-b") == 0  # another subscription is not stalled
