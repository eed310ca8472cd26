"""``judge.time_steps``: the first time step two recurrent passes part at, in computation order
(1 … T for states, T … 1 for BPTT's state gradients), each step judged against the sequence's
scale — on synthetic pairs and on the engine's LSTM with one step's gradient broken."""

from __future__ import annotations

import numpy as np
import pytest

from judge.time_steps import first_step_apart, step_errors
from scratch.layers.recurrent import LSTM


def sequence(seed=0, shape=(3, 6, 4)):
    return np.random.default_rng(seed).normal(0, 1, shape)


def test_equal_passes_have_no_step_apart_and_a_rounding_stays_within():
    desired = sequence()
    assert first_step_apart(desired.copy(), desired, 1e-13) is None
    rounded = desired * (1 + 1e-15)
    assert first_step_apart(rounded, desired, 1e-13) is None


def test_forward_states_are_searched_from_the_first_step():
    desired = sequence()
    actual = desired.copy()
    actual[:, 2] += 1e-6                                       # h_3 wrong, and everything after it
    actual[:, 4] += 1e-3
    apart = first_step_apart(actual, desired, 1e-13)
    assert apart.step == 3 and apart.error > 1e-7
    assert len(apart.errors) == 6 and apart.errors[0] == 0.0


def test_state_gradients_are_searched_from_the_last_step():
    """A backward mistake at step 5 of 6 spreads to δh_4 … δh_1: the step to name is 5, not 1."""
    desired = sequence(1)
    actual = desired.copy()
    actual[:, :5] *= 1.01                                      # δh_5 and every step computed after it
    assert first_step_apart(actual, desired, 1e-13, backward=True).step == 5
    assert first_step_apart(actual, desired, 1e-13).step == 1   # read forwards it would blame step 1


def test_a_vanished_step_is_judged_against_the_sequences_scale():
    """δh_1 a millionth of δh_6: its rounding relative to itself is ~1e-10, relative to the scale
    of the steps it came from ~1e-16, and only the second is a fact about the code."""
    desired = sequence(2)
    desired[:, 0] *= 1e-6
    actual = desired.copy()
    actual[:, 0] += 1e-16 * np.abs(desired).max() * np.sign(desired[:, 0])
    assert step_errors(actual, desired)[0] < 1e-13
    assert first_step_apart(actual, desired, 1e-13, backward=True) is None


def test_a_nan_step_is_apart_and_shapes_must_agree():
    desired = sequence(3)
    actual = desired.copy()
    actual[0, 3, 1] = np.nan
    assert first_step_apart(actual, desired, 1e-13).step == 4
    with pytest.raises(ValueError, match="of one shape"):
        first_step_apart(desired[:, :5], desired, 1e-13)


class ForgetlessLSTM(LSTM):
    """An LSTM whose BPTT reads the last step's forget gate as 1 (a broken cache): δh_T is right,
    and every step computed after it, δh_{T−1} … δh_1, inherits the mistake."""

    def bptt(self, dz, x, cache):
        gates, cells, squashed, states, h0, c0 = cache
        right = super().bptt(dz, x, cache)
        hidden = self.units
        f_last = gates[-1, :, hidden:2 * hidden]                    # the cache is time-major
        broken_cache = (gates.copy(), cells, squashed, states, h0, c0)
        broken_cache[0][-1, :, hidden:2 * hidden] = 1.0
        broken = super().bptt(dz, x, broken_cache)
        assert not np.array_equal(f_last, 1.0)
        return right._replace(dh=np.concatenate([broken.dh[:, :-1], right.dh[:, -1:]], axis=1))


def test_an_lstm_whose_bptt_breaks_at_the_last_step_is_named_there():
    rng = np.random.default_rng(4)
    weights = {"weight_ih": rng.normal(0, 0.5, (16, 3)), "weight_hh": rng.normal(0, 0.5, (16, 4)),
               "bias_ih": rng.normal(0, 0.2, 16)}
    x, dz = rng.normal(0, 1, (2, 6, 3)), rng.normal(0, 1, (2, 6, 4))
    right, wrong = LSTM(**weights, bias_hh=None), ForgetlessLSTM(**weights, bias_hh=None)
    _, cache = right.run(x)
    desired, actual = right.bptt(dz, x, cache).dh, wrong.bptt(dz, x, cache).dh
    apart = first_step_apart(actual, desired, 1e-13, backward=True)
    assert apart.step == 5, apart                          # δh_6 is right; δh_5 is the first wrong one
