"""Each position policy produces IDs with the properties it promises."""

import numpy as np
import pytest

from lengthgen.errors import UserError
from lengthgen.positions import POLICIES, PolicySettings, apply_policy
from lengthgen.tasks import make_task

SETTINGS = PolicySettings(max_position=64, pose_chunks=3)


def sample(task="copy", length=10, n=40):
    return make_task(task).sample(np.random.default_rng(0), n, length)


def ids_of(examples):
    return [ex.positions.as_array() for ex in examples]


def test_consecutive_is_the_identity():
    examples = sample()
    out = apply_policy(examples, "consecutive", np.random.default_rng(1), SETTINGS)
    assert all(list(i) == list(range(len(i))) for i in ids_of(out))


def test_random_offset_shifts_and_stays_in_range():
    out = apply_policy(sample(), "random_offset", np.random.default_rng(1), SETTINGS)
    starts = set()
    for ids in ids_of(out):
        assert np.all(np.diff(ids) == 1) and ids.max() < SETTINGS.max_position
        starts.add(int(ids[0]))
    assert len(starts) > 5  # offsets actually vary
    assert max(starts) <= SETTINGS.max_position - len(ids_of(out)[0])


def test_coupled_uses_task_ids_and_offset_keeps_bos():
    examples = sample()
    out = apply_policy(examples, "coupled", np.random.default_rng(1), SETTINGS)
    assert [ex.positions for ex in out] == [ex.coupled for ex in examples]
    shifted = apply_policy(examples, "coupled_random_offset", np.random.default_rng(1), SETTINGS)
    for ex, sh in zip(examples, shifted):
        base, new = ex.coupled.as_array(), sh.positions.as_array()
        assert new[0] == 0
        delta = new[1:] - base[1:]
        assert np.all(delta == delta[0]) and new.max() < SETTINGS.max_position
    assert len({int(s.positions.prompt[0]) for s in shifted}) > 5
    with pytest.raises(UserError, match="does not define coupled"):
        apply_policy(sample("mult_cot"), "coupled", np.random.default_rng(0), SETTINGS)


def test_pose_has_consecutive_chunks_with_skips():
    out = apply_policy(sample(n=100), "pose", np.random.default_rng(1), SETTINGS)
    saw_skip = False
    for ids in ids_of(out):
        gaps = np.diff(ids)
        assert np.all(gaps >= 1) and ids.max() < SETTINGS.max_position
        assert np.sum(gaps > 1) <= SETTINGS.pose_chunks - 1
        saw_skip |= bool(np.any(gaps > 1))
    assert saw_skip


def test_pose_starts_at_zero_and_skips_uniformly_over_the_target_range():
    # Zhu et al. 2023: the first chunk keeps ID 0; with two chunks the skip is uniform over
    # 0..max_position - seq_len, so every ID of the target range is trained.
    settings = PolicySettings(max_position=64, pose_chunks=2)
    out = apply_policy(sample(length=10, n=3000), "pose", np.random.default_rng(2), settings)
    ids = ids_of(out)
    assert all(i[0] == 0 for i in ids)
    skips = np.array([int(np.diff(i).max()) - 1 for i in ids])
    slack = 64 - len(ids[0])
    assert skips.min() == 0 and skips.max() == slack
    assert abs(skips.mean() - slack / 2) < 1.0  # uniform, not biased to small skips
    assert set(np.concatenate(ids).tolist()) == set(range(64))


def test_randomized_is_a_sorted_subset():
    out = apply_policy(sample(), "randomized", np.random.default_rng(1), SETTINGS)
    for ids in ids_of(out):
        assert np.all(np.diff(ids) >= 1) and ids.min() >= 0 and ids.max() < SETTINGS.max_position
    assert len({tuple(i) for i in ids_of(out)}) == len(out)


@pytest.mark.parametrize("name", ["random_offset", "pose", "randomized", "coupled_random_offset"])
def test_bounded_policies_refuse_sequences_that_do_not_fit(name):
    with pytest.raises(UserError, match="max_position"):
        apply_policy(sample(length=70), name, np.random.default_rng(0), SETTINGS)


def test_policies_are_deterministic_per_generator():
    for name in POLICIES:
        a = apply_policy(sample(), name, np.random.default_rng(5), SETTINGS)
        b = apply_policy(sample(), name, np.random.default_rng(5), SETTINGS)
        assert a == b
