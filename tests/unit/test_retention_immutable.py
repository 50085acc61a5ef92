"""Retention's rule 7b (issue 24): a set with a member under an unexpired immutability policy is never deleted: it is
marked to go no sooner than the policy's expiry, then kept whole with rule ``immutable`` (no delete that must fail
is planned, a mark already there is left); after the policy's expiry the set is judged as any other."""

from __future__ import annotations

from datetime import timedelta

from shared import tags as T
from shared.retention.engine import RetentionPolicy, format_instant
from tests.unit.test_retention import DAY, NOW, apply, outcome, run, snap, tags_for

KEEP_ONE = {"gold": RetentionPolicy(keep_last=1)}


def test_an_expired_set_under_a_policy_is_marked_for_its_expiry_and_kept_whole_until_then():
    artifacts = [snap("new", DAY, set_id="new"),
                 snap("old-os", 50 * DAY, set_id="old", immutable_until=NOW + 3 * DAY),
                 snap("old-data", 50 * DAY, set_id="old")]  # one member holds the whole set
    d = run(artifacts, KEEP_ONE)
    # Marked now, to go no sooner than the policy's expiry: never a delete that must fail, and not a pass later.
    assert outcome(d["old-os"]) == outcome(d["old-data"]) == ("mark", "not_selected")
    assert d["old-os"].delete_after == d["old-data"].delete_after == NOW + 3 * DAY
    assert format_instant(NOW + 3 * DAY) in d["old-data"].reason
    assert outcome(d["new"]) == ("keep", "newest_good")
    marked = apply(artifacts, [d[n] for n in ("new", "old-os", "old-data")])
    for now in (NOW + DAY, NOW + 3 * DAY - timedelta(seconds=1)):  # marked, still immutable: kept whole, nothing written
        later = run(marked, KEEP_ONE, now=now)
        assert outcome(later["old-os"]) == outcome(later["old-data"]) == ("keep", "immutable")
    gone = run(marked, KEEP_ONE, now=NOW + 3 * DAY + timedelta(seconds=1))  # the first pass after expiry
    assert outcome(gone["old-os"]) == outcome(gone["old-data"]) == ("delete", "not_selected")


def test_a_mark_never_comes_before_the_retention_deferral():
    artifacts = [snap("new", DAY, set_id="new"),
                 snap("old", 50 * DAY, set_id="old", immutable_until=NOW + timedelta(minutes=5))]
    d = run(artifacts, KEEP_ONE)
    assert outcome(d["old"]) == ("mark", "not_selected") and d["old"].delete_after > NOW + timedelta(minutes=5)
    assert d["old"].delete_after == run([artifacts[0], snap("old", 50 * DAY, set_id="old")], KEEP_ONE)["old"].delete_after


def test_after_expiry_it_is_marked_then_deleted():
    artifacts = [snap("new", DAY, set_id="new"), snap("old", 50 * DAY, set_id="old", immutable_until=NOW - 1 * DAY)]
    d = run(artifacts, KEEP_ONE)
    assert outcome(d["old"]) == ("mark", "not_selected")
    later = run(apply(artifacts, list(d.values())), KEEP_ONE, now=NOW + 2 * DAY)
    assert outcome(later["old"]) == ("delete", "not_selected")


def test_a_mark_from_before_is_left_and_never_becomes_a_delete_while_immutable():
    past = format_instant(NOW - DAY)
    artifacts = [snap("new", DAY, set_id="new"),
                 snap("old", 50 * DAY, set_id="old", immutable_until=NOW + timedelta(seconds=1),
                      tags=tags_for(set_id="old", **{T.EXPIRING: past}))]
    d = run(artifacts, KEEP_ONE)
    assert outcome(d["old"]) == ("keep", "immutable") and d["old"].delete_after == NOW - DAY
    after = run(artifacts, KEEP_ONE, now=NOW + timedelta(seconds=2))  # the mark has passed, the policy too
    assert outcome(after["old"]) == ("delete", "not_selected")


def test_a_kept_set_is_unaffected():
    artifacts = [snap("new", DAY, set_id="new", immutable_until=NOW + 30 * DAY)]
    assert outcome(run(artifacts, KEEP_ONE)["new"]) == ("keep", "newest_good")


def test_a_policy_holds_by_azures_word_else_by_its_expiry_and_on_doubt():
    from datetime import UTC, datetime, timedelta

    from azure.mgmt.compute.models import ImmutabilityPolicy

    from shared.points.model import immutability_holds

    now = datetime(2026, 12, 7, tzinfo=UTC)

    def policy(expired, until):
        p = ImmutabilityPolicy()
        p.is_policy_expired, p.policy_expiration_time = expired, until
        return p

    assert immutability_holds(None, now) is False
    assert immutability_holds(policy(False, now - timedelta(days=1)), now)  # Azure's word first
    assert not immutability_holds(policy(True, now + timedelta(days=1)), now)
    # No isPolicyExpired in the answer (the 2026-03-02 spec has no such property): its expiry decides...
    assert immutability_holds(policy(None, now + timedelta(hours=1)), now)
    assert not immutability_holds(policy(None, now - timedelta(hours=1)), now)
    assert immutability_holds(policy(None, None), now)  # ...and with neither, it holds: nothing tried on doubt
