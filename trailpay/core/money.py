"""Money: Decimal amounts tied to an ISO 4217 currency.

One module for money so that rounding, minor units and currency mixing are
decided in one place. Amounts are never floats; a posting is rounded half-even
to the currency's minor unit exactly once, where it is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

from trailpay.core.frozen import maker

# ISO 4217 minor units for the currencies trailpay accepts. Unknown codes are
# refused rather than guessed: a wrong exponent would be a wrong amount.
MINOR_UNITS: Mapping[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2,
    "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0,
    "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NGN": 2,
    "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2, "QAR": 2, "RON": 2,
    "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2,
    "UAH": 2, "USD": 2, "VND": 0, "ZAR": 2,
}


# The quantum of each currency, made once (the same Decimal quantum() used to make per call).
_QUANTA: dict[str, Decimal] = {c: Decimal(1).scaleb(-n) for c, n in MINOR_UNITS.items()}


class MoneyError(ValueError):
    """A money value is malformed, or two currencies were mixed."""


def minor_unit(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


def quantum(currency: str) -> Decimal:
    q = _QUANTA.get(currency)
    return q if q is not None else Decimal(1).scaleb(-minor_unit(currency))


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """A decimal string (or int) to Decimal; floats are refused outright."""
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError("money must be a decimal string, not a float")
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise MoneyError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise MoneyError(f"not a finite number: {text!r}")
    return value


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit."""
    q = _QUANTA.get(currency)
    if q is None:
        q = quantum(currency)  # raises MoneyError for an unknown currency
    return amount.quantize(q, ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An exact amount in one currency. Arithmetic refuses to mix currencies."""

    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        minor_unit(currency)
        return cls(parse_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return _money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return _money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return _money(-self.amount, self.currency)

    def times(self, factor: Decimal) -> Money:
        """Exact product; round it with .rounded() where a posting is made."""
        return _money(self.amount * factor, self.currency)

    def rounded(self) -> Money:
        return _money(round_money(self.amount, self.currency), self.currency)

    def is_zero(self) -> bool:
        return self.amount == 0

    def format(self) -> str:
        """The canonical string: minor-unit digits, no exponent ("1234.50")."""
        return f"{round_money(self.amount, self.currency):f}"

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"


# Money(amount, currency) without the frozen dataclass's per-field object.__setattr__.
make_money = _money = maker(Money)


def allocate(total: Money, shares: Sequence[Decimal]) -> list[Money]:
    """Split total by shares so the parts add up exactly to total.

    Each part is floored to the minor unit, then the leftover minor units are
    handed out one by one in the order given (largest remainder first, ties in
    input order), so the split is exact and deterministic.
    """
    if not shares:
        return []
    weight = sum(shares, Decimal(0))
    if weight <= 0:
        raise MoneyError("shares must sum to a positive number")
    q = quantum(total.currency)
    raw = [total.amount * s / weight for s in shares]
    floors = [r.quantize(q, rounding=ROUND_DOWN) for r in raw]
    leftover = int((total.amount.quantize(q) - sum(floors, Decimal(0))) / q)
    order = sorted(range(len(shares)), key=lambda i: (-abs(raw[i] - floors[i]), i))
    step = q if leftover >= 0 else -q
    for i in order[: abs(leftover)]:
        floors[i] += step
    return [Money(f, total.currency) for f in floors]


class Balances:
    """Amounts keyed by (currency, bucket); never adds across currencies."""

    __slots__ = ("_amounts",)

    def __init__(self, items: Iterable[tuple[str, str, Decimal]] = ()) -> None:
        self._amounts: dict[tuple[str, str], Decimal] = {}
        for currency, bucket, amount in items:
            self.add(currency, bucket, amount)

    def add(self, currency: str, bucket: str, amount: Decimal) -> None:
        key = (currency, bucket)
        self._amounts[key] = self._amounts.get(key, Decimal(0)) + amount

    def get(self, currency: str, bucket: str) -> Decimal:
        return self._amounts.get((currency, bucket), Decimal(0))

    def currencies(self) -> list[str]:
        return sorted({c for c, _ in self._amounts})

    def items(self) -> list[tuple[str, str, Decimal]]:
        return sorted((c, b, a) for (c, b), a in self._amounts.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Balances):
            return NotImplemented
        nz = lambda d: {k: v for k, v in d.items() if v != 0}  # noqa: E731
        return nz(self._amounts) == nz(other._amounts)

    def __repr__(self) -> str:
        return f"Balances({self.items()!r})"
