"""fastjson reads and writes what the standard json module does, including what orjson refuses."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers import fastjson

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    # at orjson's edges: past them it reads integers as floats
    | st.integers(2**63 - 3, 2**64 + 3)
    | st.integers(-(2**63) - 3, -(2**63) + 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),  # lone surrogates too
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


class TestLoads:
    @settings(max_examples=300, deadline=None)
    @given(value=json_values)
    def test_reads_what_json_reads(self, value):
        text = json.dumps(value)
        # repr, not ==: 1 == 1.0 and -0.0 == 0.0, but a float read for an int is a difference
        assert repr(fastjson.loads(text.encode())) == repr(json.loads(text))

    @pytest.mark.parametrize(
        "body",
        [
            b"18446744073709551616",
            b"-9223372036854775809",
            b'{"n": [0, 123456789012345678901234567890]}',
            b'"\\ud800"',
            b"[NaN]",
            b"1e400",
        ],
        ids=["beyond-u64", "below-i64", "nested-long", "lone-surrogate", "nan", "beyond-float"],
    )
    def test_documents_orjson_reads_otherwise_are_read_as_json_reads_them(self, body):
        expected = json.loads(body)
        found = fastjson.loads(body)
        if isinstance(expected, list) and expected and isinstance(expected[0], float):
            assert math.isnan(found[0])
        else:
            assert repr(found) == repr(expected)

    def test_what_json_refuses_is_refused(self):
        for body in (b"{", b"\xff\xfe", b"[1,]"):
            with pytest.raises(ValueError):
                fastjson.loads(body)
        with pytest.raises(RecursionError):  # as json.loads, whose limit orjson's exceeds
            fastjson.loads(b"[" * 2000 + b"]" * 2000)


class TestDumps:
    @settings(max_examples=300, deadline=None)
    @given(value=json_values)
    def test_writes_what_reads_back_the_same(self, value):
        assert repr(json.loads(fastjson.dumps(value))) == repr(value)

    def test_an_integer_beyond_64_bits_is_written(self):
        assert fastjson.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'


class TestLogLine:
    def test_keeps_unicode_and_writes_unknown_values_as_text(self):
        line = fastjson.log_line({"title": "配信不可", "when": {1, 2} - {1}, 3: "int key"})
        assert json.loads(line) == {"title": "配信不可", "when": "{2}", "3": "int key"}
        assert "配信不可" in line

    def test_an_integer_beyond_64_bits_is_written(self):
        assert json.loads(fastjson.log_line({"n": 2**70})) == {"n": 2**70}
