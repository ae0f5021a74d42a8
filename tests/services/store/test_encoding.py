"""Journal JSON: compact and fast, but a non-finite number is an error naming where it is, never a silent null."""

from __future__ import annotations

import math

import pytest

from desk.services.store.encoding import _require_finite, encode_json


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


def test_encode_when_a_record_has_top_level_nones_and_a_nan_then_the_nan_is_still_named() -> None:
    # As many nulls as Nones would pass the quick text check; one NaN more must not.
    with pytest.raises(ValueError, match=r"^stop_price is nan"):
        encode_json({"limit_price": None, "stop_price": math.nan, "take_profit": None})


def test_encode_when_nulls_come_from_nones_or_text_then_no_error() -> None:
    value = {"reason": "nullified", "nested": {"a": None}, "column": [1.5] * 20 + [None], "limit_price": None}

    assert encode_json(value) == (
        '{"reason":"nullified","nested":{"a":null},"column":[' + "1.5," * 20 + 'null],"limit_price":null}'
    )


def test_encode_when_a_column_of_an_equity_series_holds_a_non_finite_number_then_error_names_the_field() -> None:
    record = {"type": "EquitySeries", "equity": [10_000.0] * 1440, "cash": [9_000.0] * 1440}
    record["cash"][1439] = -math.inf

    with pytest.raises(ValueError, match=r"^cash\[1439\] is -inf"):
        encode_json(record, sort_keys=True)


def test_encode_when_values_nest_deeper_than_the_recursion_limit_then_still_checked() -> None:
    # The check is a loop over a stack, not recursion: depth costs memory, never a RecursionError.
    value: list = [math.nan]
    for _ in range(5_000):
        value = [value]

    with pytest.raises(ValueError, match=r"is nan"):
        _require_finite(value)
