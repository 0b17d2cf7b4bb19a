"""Per-hashboard options (issue 14 part 3): k of B boards at full ratio, power and hash from the model, offered only
to machines whose capabilities say boards can be switched; the budget holds with them in the plan."""

from __future__ import annotations

import numpy as np
import pytest

from kuat.catalog import MODELS, power_at_ratio
from quota.fleet import FleetArrays, Machine

S19J, S9 = MODELS["S19j Pro"], MODELS["S9"]


def test_board_options_are_k_of_b_boards_at_full_ratio_from_the_model() -> None:
    f = FleetArrays.from_machines([Machine("bos", S19J, power_target=True, boards=True, power_factor=1.02,
                                           hash_factor=0.98),
                                   Machine("lux", S19J, power_target=True)])
    power, hash_, on = f.board_options()
    assert power.shape == hash_.shape == on.shape == (2, S19J.boards - 1)
    base, full = 1.02 * S19J.base_w, 1.02 * power_at_ratio(S19J, 1.0)
    assert power[0].tolist() == pytest.approx([base + (full - base) * k / 3 for k in (1, 2)])
    assert hash_[0].tolist() == pytest.approx([0.98 * S19J.nominal_ths * k / 3 for k in (1, 2)])
    assert on[0].tolist() == [1, 2]
    assert np.isnan(power[1]).all() and np.isnan(hash_[1]).all() and on[1].tolist() == [0, 0]  # no capability


def test_no_machine_with_boards_gives_no_columns() -> None:
    power, hash_, on = FleetArrays.from_machines([Machine("a", S9), Machine("b", S19J)]).board_options()
    assert power.shape == hash_.shape == on.shape == (2, 0)
