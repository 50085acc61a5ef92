"""The shared write budget: the bucket's arithmetic (pure, property-tested) and the table-backed
bucket under concurrent workers in Azurite (optimistic concurrency: no token granted twice)."""

from __future__ import annotations

import threading
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.azure import pacing


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5), max_size=80), st.floats(0, 60), st.floats(0.5, 20), st.integers(1, 50),
       st.floats(-50, 50), st.floats(1, 100))
def test_a_spread_run_stays_within_the_bucket_and_ends_when_it_must(counts, now, rate, burst, tokens, max_ahead):
    start = pacing.Bucket(min(tokens, burst), 0.0)
    bucket, out = pacing.reserve_many(start, counts, now, rate, burst, max_ahead)
    available = start.refilled(now, rate, burst).tokens
    promised = [(now + wait, n) for (wait, ok), n in zip(out, counts, strict=True) if ok]
    for t, _ in promised:  # by each moment, no more than the bucket had plus its refill since
        due = sum(n for at, n in promised if at <= t + 1e-9)
        assert due <= available + rate * (t - now) + 1e-6
    assert [ok for _, ok in out] == sorted((ok for _, ok in out), reverse=True)  # a prefix is promised
    assert all(0 <= wait <= max_ahead for wait, ok in out if ok)
    if promised and len(promised) == len(counts) and sum(counts) > available:
        assert abs(max(t for t, _ in promised) - now - (sum(counts) - available) / rate) < 1e-6  # not later than needed
    assert bucket.tokens == (available - sum(n for _, n in promised) if promised else start.tokens)


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
