"""Concurrent registry changes on PostgreSQL: the lock and the constraint keep exactly one active."""

import itertools
import threading

import pytest
from django.db import connections

from predictor import services
from predictor.models import ModelVersion, PromotionEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
]


def _run_concurrently(calls):
    """Start every call at the same moment, each in its own thread (own database connection)."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait()
            outcomes[index] = ("ok", call())
        except services.RegistryError as exc:
            outcomes[index] = ("refused", str(exc))
        except Exception as exc:
            outcomes[index] = ("error", repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_promotions_leave_exactly_one_active_version(train_version):
    train_version()
    candidates = [train_version(promote=False, random_state=seed).version for seed in range(1, 7)]
    outcomes = _run_concurrently([lambda v=v: services.model_version_promote(version=v) for v in candidates])

    assert [kind for kind, _ in outcomes] == ["ok"] * len(candidates)  # they queue, none fails
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1
    promotions = list(PromotionEvent.objects.filter(action="promote").order_by("id"))
    assert len(promotions) == 1 + len(candidates)
    # Each promotion saw the previous one's result: the trail is one unbroken chain.
    for before, after in itertools.pairwise(promotions):
        assert after.from_version_id == before.to_version_id
    assert ModelVersion.objects.get(status="active").version == promotions[-1].to_version_id


def test_racing_promotions_of_the_same_version_let_one_win(train_version):
    train_version()
    candidate = train_version(promote=False, random_state=1).version
    outcomes = _run_concurrently([lambda: services.model_version_promote(version=candidate)] * 4)

    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["ok", "refused", "refused", "refused"]
    assert all("already active" in detail for kind, detail in outcomes if kind == "refused")
    assert PromotionEvent.objects.filter(to_version=candidate).count() == 1


def test_mixed_promote_rollback_and_train_calls_keep_the_audit_trail_consistent(train_version, diabetes):
    train_version()
    candidates = [train_version(promote=False, random_state=seed).version for seed in range(1, 4)]
    events_before = PromotionEvent.objects.count()
    calls = [lambda v=v: services.model_version_promote(version=v) for v in candidates]
    calls += [services.model_version_rollback] * 3
    calls += [lambda: services.model_version_train(dataset=diabetes, random_state=9)] * 2
    outcomes = _run_concurrently(calls)

    assert not [o for o in outcomes if o[0] == "error"], outcomes
    succeeded = sum(kind == "ok" for kind, _ in outcomes)
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1
    # One event per successful call (a successful train promotes), none for a refused one.
    assert PromotionEvent.objects.count() - events_before == succeeded
