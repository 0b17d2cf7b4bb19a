"""BIN/IIN check digit, against values computed by hand."""

from __future__ import annotations

import pytest

from registry.bin import bin_problem, check_digit, is_valid_bin


def test_first_weights() -> None:
    # 1*1 + 8*2 + 0*3 + 3*4 + 4*5 + 0*6 + 0*7 + 2*8 + 1*9 + 7*10 + 9*11 = 243; 243 mod 11 = 1
    assert check_digit("18034002179") == 1
    assert is_valid_bin("180340021791")
    assert bin_problem("180340021792") == "check digit is 2, expected 1"


def test_second_weights_when_first_sum_gives_ten() -> None:
    # weights 1..11: 1*10 = 10 -> 10, so again with 3..11,1,2: 1*1 = 1 -> check digit 1
    assert check_digit("00000000010") == 1
    assert is_valid_bin("000000000101")
    assert not is_valid_bin("000000000100")


def test_never_issued_when_both_sums_give_ten() -> None:
    # first: 5*1 + 6*10 = 65, 65 mod 11 = 10; second: 5*3 + 6*1 = 21, 21 mod 11 = 10 -> no check digit exists
    assert check_digit("50000000060") is None
    for last in "0123456789":
        assert not is_valid_bin("50000000060" + last)
    assert "no valid check digit" in (bin_problem("500000000600") or "")


@pytest.mark.parametrize("value", ["", "18034002179", "1803400217910", "18034002179a", "１８０３４００２１７９１"])
def test_shape(value: str) -> None:
    assert bin_problem(value) == "must be exactly 12 digits"
