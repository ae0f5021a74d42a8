"""Journal JSON: compact and fast, but a non-finite number is an error naming where it is, never a silent null."""

from __future__ import annotations

import math

import pytest

from desk.services.store.encoding import encode_json


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"equity": math.nan}, "equity"),
        ({"features": {"rsi": math.inf}}, "features.rsi"),
        ({"equity": [100.0] * 30 + [-math.inf]}, "equity[30]"),
        ({"fills": [{"price": math.nan}]}, "fills[0].price"),
    ],
)
def test_encode_when_a_number_is_not_finite_then_error_names_its_path(value: dict, where: str) -> None:
    with pytest.raises(ValueError) as error:
        encode_json(value)
    assert str(error.value).startswith(f"{where} is")


def test_encode_when_values_are_finite_or_missing_then_compact_json() -> None:
    assert encode_json({"b": 1, "a": [0.5, None, "x"]}) == '{"b":1,"a":[0.5,null,"x"]}'
    assert encode_json({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'
    assert encode_json({"column": [1.0] * 20 + [None]}).endswith("1.0,null]}")
