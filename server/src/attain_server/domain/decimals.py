"""Exact decimal parsing and formatting: the only way a number enters or leaves the domain."""

from __future__ import annotations

import re
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_DOWN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

from .errors import quoted

# Sign, digits, optional fraction. No exponent, no spaces, no thousands separators:
# what a brand's files and clients send, and nothing a float's repr could sneak in.
# ASCII digits only (`\d` would take "١٢" and Decimal would read it as 12), and the whole
# text (`$` would let a trailing newline through).
_DECIMAL_RE = re.compile(r"[+-]?([0-9]+)(\.[0-9]+)?")
MAX_DIGITS = 28
MAX_SCALE = 10
HUNDRED = Decimal(100)
# The contexts every exact computation uses. Their own methods are called (EXACT.add(a, b))
# rather than swapping the thread's current context with `localcontext()` on every call.
# EXACT: sums, products and differences that must stay exact however many digits they grow
# to; any rounding at all raises instead of silently happening.
EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)
# WIDE: wide enough to normalise any decimal Attain holds, and to compute points from values
# and percents within their bounds before they are cut to whole points.
WIDE = Context(prec=60)
# PERCENT: the one place a percentage is divided out: 40 significant digits, cut (never
# rounded up), so a member at 99.999...% is never shown as 100%.
PERCENT = Context(prec=40, rounding=ROUND_DOWN, traps=[InvalidOperation, DivisionByZero])
_QUANTIZE = Context(prec=60, rounding=ROUND_DOWN)
_PLACES = [Decimal(1).scaleb(-places) for places in range(8)]
ZERO = Decimal(0)


class DecimalFormatError(ValueError):
    """The text is not an exact decimal we accept; the message says why."""


def parse_decimal(text: str) -> Decimal:
    """Parses ``"1234.50"`` exactly. Raises DecimalFormatError with a readable reason."""
    # The usual text (unsigned ASCII digits, at most one point, within the limits) is taken
    # straight away; anything else goes through the full rules, which say what is wrong.
    if type(text) is str and text.isascii():
        integer, point, fraction = text.partition(".")
        if (
            integer.isdigit()
            and (fraction.isdigit() if point else True)
            and len(fraction) <= MAX_SCALE
            and len(integer.lstrip("0")) + len(fraction) <= MAX_DIGITS
        ):
            return Decimal(text)
    return _parse_strictly(text)


def _parse_strictly(text: str) -> Decimal:
    """`parse_decimal` by its rules alone: every text, and the reason for a refusal."""
    if not isinstance(text, str):
        raise DecimalFormatError("must be a decimal string")
    if text == "":
        raise DecimalFormatError("is required")
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        raise DecimalFormatError(f"{quoted(text)} is not a decimal number like 1234.50")
    integer, fraction = match.group(1), match.group(2) or ""
    scale = max(len(fraction) - 1, 0)
    if scale > MAX_SCALE:
        raise DecimalFormatError(f"has more than {MAX_SCALE} decimal places")
    if len(integer.lstrip("0")) + scale > MAX_DIGITS:
        raise DecimalFormatError(f"has more than {MAX_DIGITS} digits")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise DecimalFormatError(f"{quoted(text)} is not a decimal number") from exc


def format_decimal(value: Decimal) -> str:
    """Plain notation, never an exponent ("1E+3" becomes "1000"), trailing zeros kept."""
    if not value.is_finite():
        raise ValueError("only finite decimals can be formatted")
    text = decimal_text(value)
    return "0" if text in ("-0", "+0") else text


def decimal_text(value: Decimal) -> str:
    """``format(value, "f")`` at the speed of ``str``: the two agree unless ``str`` chooses an
    exponent (a positive exponent, or more than six zeros after the point), and then
    ``format`` is used. For stored lines, where every transaction pays for it."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def normalize(value: Decimal) -> Decimal:
    """Strips trailing zeros without exponent notation (Decimal('1E+3') -> Decimal('1000'))."""
    if value == 0:
        return ZERO
    normal = WIDE.normalize(value)
    # str() shows an exponent when the normal form has one worth showing: only then is the
    # value rebuilt from plain notation (1E+3 -> 1000; 1E-7 stays as it is, with or without).
    return Decimal(format(normal, "f")) if "E" in str(normal) else normal


def quantize_down(value: Decimal, places: int) -> Decimal:
    """Rounds towards zero to ``places`` decimals (89.999 -> 89.99)."""
    exponent = _PLACES[places] if 0 <= places < len(_PLACES) else Decimal(1).scaleb(-places)
    return _QUANTIZE.quantize(value, exponent)
