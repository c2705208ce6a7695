"""Unit tests of domain/decimals.py: the text of a decimal is exact and never an exponent."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from attain_server.domain.decimals import decimal_text, parse_decimal

# Decimals as the domain holds them: parsed (up to 28 digits, 10 places), their differences
# (net lines), and the odd ones arithmetic can make (positive exponents, tiny values).
decimals = st.builds(
    lambda digits, exponent, negative: Decimal((int(negative), tuple(digits), exponent)),
    st.lists(st.integers(0, 9), min_size=1, max_size=28),
    st.integers(-12, 4),
    st.booleans(),
)


@given(decimals)
def test_decimal_text_is_plain_notation(value: Decimal) -> None:
    text = decimal_text(value)
    assert text == format(value, "f")
    assert "E" not in text
    assert Decimal(text) == value


def test_decimal_text_of_values_str_would_write_with_an_exponent() -> None:
    assert decimal_text(Decimal("1E+3")) == "1000"
    assert decimal_text(Decimal("0.0000001")) == "0.0000001"
    assert decimal_text(parse_decimal("12.50")) == "12.50"
