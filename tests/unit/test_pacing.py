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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.integers(1, 5)), max_size=80), st.floats(0.5, 20), st.integers(1, 50))
def test_promises_never_exceed_burst_plus_refill_at_any_moment(steps, rate, burst):
    """Every promise made is for a moment by which ARM's bucket has the tokens: count the writes
    promised for each moment t and compare with what a full bucket plus refill allows by t."""
    bucket, now, promises = pacing.Bucket(burst, 0.0), 0.0, []
    for gap, n in steps:
        now += gap
        bucket, wait, promised = pacing.reserve(bucket, n, now, rate, burst, max_ahead=30)
        if promised:
            assert 0 <= wait <= 30
            promises.append((now + wait, n))
        else:
            assert wait > 0
    for t, _ in promises:
        due = sum(n for at, n in promises if at <= t + 1e-9)
        assert due <= burst + rate * t + 1e-6


def test_promises_queue_up_in_order_at_the_refill_rate():
    bucket = pacing.Bucket(2, 0.0)
    waits = []
    for _ in range(5):
        bucket, wait, promised = pacing.reserve(bucket, 1, 0.0, 4.0, 2)
        assert promised
        waits.append(wait)
    assert waits == [0, 0, 0.25, 0.5, 0.75]
    _, wait, promised = pacing.reserve(bucket, 40, 0.0, 4.0, 2, max_ahead=5)
    assert not promised and wait == (3 + 40) / 4 - 5  # asked again when it would fall within reach


def test_arm_headers_shrink_and_block_the_bucket():
    bucket = pacing.observe(pacing.Bucket(100, 0.0), 0.0, 10, 100, remaining=30, retry_after=None, reserve_tokens=10)
    assert bucket.tokens == 20
    same = pacing.observe(bucket, 0.0, 10, 100, remaining=90, retry_after=None, reserve_tokens=10)
    assert same is bucket  # nothing learnt: nothing to write
    blocked = pacing.observe(bucket, 0.0, 10, 100, remaining=None, retry_after=7)
    _, wait = pacing.take(blocked, 1, 2.0, 10, 100)
    assert wait == 5.1  # 7 s of debt at 10/s, 2 s gone, and one token more


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
    at, promised = budget.reserve("sub-a", 3)
    assert promised and at == 1003.0  # a promise: three tokens at 1/s
    other = pacing.WriteBudget(table, rate=1.0, burst=40, clock=lambda: frozen[0])  # another instance
    assert other.reserve("sub-a", 1) == (1004.0, True)  # sees the promise through the table
    assert budget.reserve("sub-a", 1) == (1005.0, True)  # its stale ETag is refused, it re-reads
