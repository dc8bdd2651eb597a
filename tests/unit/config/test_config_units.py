"""Human units in config: durations parse to float seconds, sizes to int bytes."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from dispa.config.units import Duration, Size, parse_duration, parse_size

DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_FACTORS = {
    "": 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "K": 1024,
    "k": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1s", 1.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (" 2 s ", 2.0),
        ("0.5m", 30.0),
    ],
)
def test_duration_strings(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(("number", "seconds"), [(0, 0.0), (3, 3.0), (0.25, 0.25), (10.0, 10.0)])
def test_duration_bare_numbers_are_seconds(number, seconds):
    assert parse_duration(number) == seconds
    assert isinstance(parse_duration(number), float)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64KiB", 65536),
        ("1MiB", 1048576),
        ("1GiB", 1073741824),
        ("1GB", 1_000_000_000),
        ("10MB", 10_000_000),
        ("8192", 8192),
        ("0", 0),
        ("5B", 5),
        ("16k", 16384),
    ],
)
def test_size_strings(text, size):
    assert parse_size(text) == size
    assert isinstance(parse_size(text), int)


@pytest.mark.parametrize("number", [0, 1, 8192, 10**12])
def test_size_bare_integers(number):
    assert parse_size(number) == number


@pytest.mark.parametrize(
    "bad", ["5x", "1 sec", "ms", "-1s", "1.5.5s", "", "1e3ms", "soon", "1S", "1 hour"]
)
def test_bad_duration_strings_name_the_value(bad):
    with pytest.raises(ValueError) as caught:
        parse_duration(bad)
    assert f"'{bad}'" in str(caught.value)


@pytest.mark.parametrize("bad", [True, None, [1], {"s": 1}, float("nan"), float("inf"), -1, -0.5])
def test_bad_duration_values_name_the_value(bad):
    with pytest.raises(ValueError) as caught:
        parse_duration(bad)
    assert str(bad) in str(caught.value)


@pytest.mark.parametrize("bad", ["1.5MiB", "64 KiBs", "1TB", "-5", "lots", "", "1kib", "0x10"])
def test_bad_size_strings_name_the_value(bad):
    with pytest.raises(ValueError) as caught:
        parse_size(bad)
    assert f"'{bad}'" in str(caught.value)


@pytest.mark.parametrize("bad", [1.5, True, None, [1], -5])
def test_bad_size_values_name_the_value(bad):
    with pytest.raises(ValueError) as caught:
        parse_size(bad)
    assert str(bad) in str(caught.value)


class _Holder(BaseModel):
    timeout: Duration = 1.0
    size: Size = 0


def test_annotated_types_validate_in_models():
    holder = _Holder.model_validate({"timeout": "250ms", "size": "64KiB"})
    assert holder.timeout == 0.25
    assert holder.size == 65536
    with pytest.raises(ValidationError) as caught:
        _Holder.model_validate({"timeout": "forever"})
    assert "'forever' is not a duration" in str(caught.value)


@given(n=st.integers(min_value=0, max_value=10**9), unit=st.sampled_from(sorted(DURATION_FACTORS)))
def test_any_whole_duration_parses_to_n_times_its_factor(n, unit):
    assert parse_duration(f"{n}{unit}") == float(n) * DURATION_FACTORS[unit]


@given(
    whole=st.integers(min_value=0, max_value=10**6),
    fraction=st.integers(min_value=0, max_value=999),
    unit=st.sampled_from(sorted(DURATION_FACTORS)),
)
def test_decimal_durations(whole, fraction, unit):
    text = f"{whole}.{fraction:03d}{unit}"
    expected = (whole + fraction / 1000) * DURATION_FACTORS[unit]
    assert math.isclose(parse_duration(text), expected, rel_tol=1e-12, abs_tol=1e-12)


@given(n=st.integers(min_value=0, max_value=10**15), unit=st.sampled_from(sorted(SIZE_FACTORS)))
def test_any_size_parses_to_n_times_its_factor(n, unit):
    assert parse_size(f"{n}{unit}") == n * SIZE_FACTORS[unit]


@given(n=st.integers(min_value=0, max_value=10**18))
def test_bare_integers_round_trip(n):
    assert parse_size(n) == n
    assert parse_size(str(n)) == n
    assert parse_duration(n) == float(n)


@given(text=st.text(max_size=12))
def test_arbitrary_text_either_parses_or_names_itself(text):
    # Never any other exception type, and a refusal always quotes what was written.
    for parse in (parse_duration, parse_size):
        try:
            value = parse(text)
        except ValueError as error:
            assert f"'{text}'" in str(error)
        else:
            assert value >= 0
