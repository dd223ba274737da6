"""Server-rendered SVG charts for the dashboards: no script, no CDN, readable in print.

Each chart is a small function of plain numbers returning markup (jinja2's Markup, so the
templates embed it as it is); every label passes through `escape`. Values are Decimals
(or None for a gap); the charts only scale them to pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from markupsafe import Markup, escape

PALETTE = ("#1f5fbf", "#e07b00", "#2a9d5b", "#b8342b", "#7d4fb0", "#7a6a55", "#c2489a",
           "#5c6b7a", "#1aa3a3", "#a7a21c")
W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 260, 64, 150, 32, 36


def _nice(top: float) -> float:
    """A round axis maximum at or above `top`."""
    if top <= 0:
        return 1.0
    step = 10 ** (len(str(int(top))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= top:
            return m * step
    return 10.0 * step


def _label(v: float) -> str:
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:.3g}M"
    if abs(v) >= 1_000:
        return f"{v / 1_000:.3g}k"
    return f"{v:.3g}"


def _frame(title: str, xs: Sequence[str], top: float, bottom: float = 0.0) -> list[str]:
    """Axes, grid and labels; `bottom` (zero or below) is a whole number of grid steps."""
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" '
           f'width="{W}" height="{H}" role="img" aria-label="{escape(title)}">'
           f"<title>{escape(title)}</title>"
           f'<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#1d2330">'
           f"{escape(title)}</text>"]
    step = top / 4
    v = bottom
    while v <= top + step / 1000:
        y = TOP + plot_h - plot_h * (v - bottom) / (top - bottom)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#dde1e7"/><text x="{LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end" font-size="10" fill="#5d6675">{_label(v)}</text>')
        v += step
    every = max(1, -(-len(xs) // 7))  # at most 7 labels: they must not overlap
    for i, x in enumerate(xs):
        if i % every == 0:
            cx = LEFT + plot_w * (i + 0.5) / max(len(xs), 1)
            out.append(f'<text x="{cx:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" '
                       f'font-size="10" fill="#5d6675">{escape(x)}</text>')
    return out


def _legend(names: Sequence[str], out: list[str], band: bool = False) -> None:
    for i, name in enumerate([*names, *(["low–high band"] if band else [])]):
        y = TOP + 6 + i * 16
        fill = f'"{PALETTE[i % len(PALETTE)]}"' if i < len(names) else \
            '"#1f5fbf" fill-opacity="0.15"'
        out.append(f'<rect x="{W - RIGHT + 12}" y="{y - 8}" width="10" height="10" '
                   f'fill={fill}/><text x="{W - RIGHT + 26}" y="{y + 1}" '
                   f'font-size="11" fill="#1d2330">{escape(name)}</text>')


def stacked_bars(title: str, xs: Sequence[str],
                 series: Mapping[str, Sequence[Decimal]]) -> Markup:
    """One bar per x, stacked by series (negative parts stack downwards from zero)."""
    names = list(series)
    pos = [sum(float(max(series[n][i], 0)) for n in names) for i in range(len(xs))]
    neg = [sum(float(min(series[n][i], 0)) for n in names) for i in range(len(xs))]
    top = _nice(max(pos, default=0))
    low = min(neg, default=0.0)
    bottom = -math.ceil(-low / (top / 4)) * (top / 4) if low < 0 else 0.0
    out = _frame(title, xs, top, bottom)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    scale = plot_h / (top - bottom)
    zero = TOP + top * scale
    bar = plot_w / max(len(xs), 1) * 0.7
    for i in range(len(xs)):
        cx = LEFT + plot_w * (i + 0.5) / len(xs)
        up, down = zero, zero
        for k, n in enumerate(names):
            v = float(series[n][i])
            if not v:
                continue
            h = abs(v) * scale
            y = (up - h) if v > 0 else down
            if v > 0:
                up -= h
            else:
                down += h
            out.append(f'<rect x="{cx - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                       f"<title>{escape(xs[i])} {escape(n)}: {series[n][i]:,f}</title></rect>")
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{zero:.1f}" y2="{zero:.1f}" '
               'stroke="#1d2330"/>')
    _legend(names, out)
    out.append("</svg>")
    return Markup("".join(out))


def lines(title: str, xs: Sequence[str], series: Mapping[str, Sequence[Decimal | None]],
          band: tuple[Sequence[Decimal], Sequence[Decimal]] | None = None) -> Markup:
    """One line per series (None leaves a gap); `band` shades (low, high) behind them."""
    values = [float(v) for s in series.values() for v in s if v is not None]
    if band:
        values += [float(v) for v in band[1]]
    top = _nice(max(values, default=0))
    out = _frame(title, xs, top)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def point(i: int, v: Decimal) -> str:
        return (f"{LEFT + plot_w * (i + 0.5) / max(len(xs), 1):.1f},"
                f"{TOP + plot_h - plot_h * float(v) / top:.1f}")

    if band and xs:
        low, high = band
        pts = [point(i, v) for i, v in enumerate(high)] + \
              [point(i, v) for i, v in reversed(list(enumerate(low)))]
        out.append(f'<polygon points="{" ".join(pts)}" fill="#1f5fbf" fill-opacity="0.15">'
                   "<title>low to high</title></polygon>")
    for k, (name, vs) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        run: list[str] = []
        for i, v in enumerate([*vs, None]):
            if v is None:
                if len(run) > 1:
                    out.append(f'<polyline points="{" ".join(run)}" fill="none" '
                               f'stroke="{colour}" stroke-width="2"/>')
                run = []
                continue
            run.append(point(i, v))
            out.append(f'<circle cx="{point(i, v).split(",")[0]}" cy="{point(i, v).split(",")[1]}" '
                       f'r="2.5" fill="{colour}"><title>{escape(xs[i])} {escape(name)}: '
                       f"{v:f}</title></circle>")
    _legend(list(series), out, band=bool(band))
    out.append("</svg>")
    return Markup("".join(out))


def interval(title: str, low: Decimal, point: Decimal, high: Decimal,
             width: int = 180, height: int = 20) -> Markup:
    """A difference and its 95% interval on a line through zero, scaled to the row alone
    (rows of a report have different units): the bar crossing zero says "no difference
    is ruled out"."""
    reach = max(abs(float(low)), abs(float(high)), abs(float(point))) * 1.1 or 1.0
    pad = 6

    def x(v: Decimal | float) -> float:
        return pad + (width - 2 * pad) * (float(v) + reach) / (2 * reach)

    mid, colour = height / 2, "#2a9d5b" if low > 0 or high < 0 else "#5d6675"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="interval" viewBox="0 0 {width} '
        f'{height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}: {point:f} [{low:f}, {high:f}]</title>"
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="2" y2="{height - 2}" stroke="#1d2330"/>'
        f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{mid}" y2="{mid}" '
        f'stroke="{colour}" stroke-width="3"/>'
        f'<circle cx="{x(point):.1f}" cy="{mid}" r="4" fill="{colour}"/></svg>')
