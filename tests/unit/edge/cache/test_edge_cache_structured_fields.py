"""Structured Field Dictionaries (RFC 8941), the syntax of targeted cache-control fields:
the RFC's own examples, and the errors that make a whole field invalid."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispa.edge.cache.structured_fields import InnerList, Token, parse_dictionary


def values(parsed):
    return {key: value for key, (value, _) in parsed.items()}


def test_the_rfc_examples():
    parsed = parse_dictionary(b'en="Applepie", da=:w4ZibGV0w6ZydGU=:')
    assert values(parsed) == {"en": "Applepie", "da": "Æblet\u00e6rte".encode()}
    parsed = parse_dictionary("a=?0, b, c; foo=bar")
    assert values(parsed) == {"a": False, "b": True, "c": True}
    assert parsed["c"][1] == {"foo": "bar"} and type(parsed["c"][1]["foo"]) is Token
    parsed = parse_dictionary("rating=1.5, feelings=(joy sadness)")
    assert parsed["rating"] == (1.5, {})
    feelings = parsed["feelings"][0]
    assert isinstance(feelings, InnerList)
    assert feelings == [("joy", {}), ("sadness", {})]
    parsed = parse_dictionary("a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid")
    assert values(parsed) == {"a": [(1, {}), (2, {})], "b": 3, "c": 4, "d": [(5, {}), (6, {})]}
    assert parsed["d"][1] == {"valid": True}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max-age=60", {"max-age": 60}),
        ("max-age=60, no-store", {"max-age": 60, "no-store": True}),
        ("   max-age=60", {"max-age": 60}),  # leading spaces
        ("max-age=60 ,\tprivate", {"max-age": 60, "private": True}),  # OWS around commas
        ("a=1, a=2", {"a": 2}),  # a repeated key: the last wins
        ("a=-5", {"a": -5}),
        ("a=999999999999999", {"a": 999_999_999_999_999}),  # 15 digits
        ("a=123456789012.123", {"a": 123456789012.123}),
        ('a="say \\"hi\\" \\\\ o/"', {"a": 'say "hi" \\ o/'}),
        ("a=*tok/en:x", {"a": "*tok/en:x"}),
        ("a=:aGk:", {"a": b"hi"}),  # padding left out
        ("*a=1", {"*a": 1}),
        ("a=()", {"a": []}),
        ("", {}),
        ("   ", {}),
    ],
)
def test_valid_dictionaries(text, expected):
    assert values(parse_dictionary(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "max-age=60,",  # a trailing comma
        "max-age=60,,no-store",  # an empty member
        ",max-age=60",
        "Max-Age=60",  # keys are lower-case
        "1a=1",
        "-a=1",
        "max-age=60 no-store",  # no comma between members
        "max-age=60;",  # a parameter without a key
        'a="unterminated',
        'a="bad \\x escape"',
        'a="tab\tinside"',
        "a=1.2345",  # three decimals at most
        "a=1.",
        "a=1234567890123.1",  # twelve integer digits at most
        "a=1234567890123456",  # fifteen digits at most
        "a=-",
        "a=(1 2",  # an inner list without its ')'
        "a=(1,2)",
        "a=?2",
        "a=?",
        "a=:not base64!:",
        "a=:aGk",
        "a=@1659578233",  # a Date (RFC 9651) is not RFC 8941
        "a=",
        "\tmax-age=60",  # only spaces may lead
        "max-age=60\x00",
        "max-age=6\u00e90",  # not ASCII
    ],
)
def test_invalid_dictionaries_are_none(text):
    assert parse_dictionary(text) is None
    assert parse_dictionary(text.encode("utf-8")) is None


def test_bytes_outside_ascii_are_invalid():
    assert parse_dictionary(b"max-age=60, x=\xff") is None


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused_without_raising(data):
    parsed = parse_dictionary(data)
    assert parsed is None or isinstance(parsed, dict)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z*][a-z0-9_.*-]{0,8}", fullmatch=True),
        st.one_of(st.booleans(), st.integers(-(10**15) + 1, 10**15 - 1)),
        max_size=8,
    )
)
def test_what_a_serialiser_writes_reads_back(members):
    def item(value):
        if value is True:
            return ""
        if value is False:
            return "=?0"
        return f"={value}"

    text = ", ".join(f"{key}{item(value)}" for key, value in members.items())
    assert values(parse_dictionary(text)) == members
