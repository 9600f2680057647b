"""Human-readable sizes for tables (exact bytes stay in JSON), and text from files made safe to show."""

import codecs
import math


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def b_params(n: int) -> str:
    """A parameter count in units of 10⁹, named as such ("0.135 B params", "7.24 B params"): three
    significant digits below one billion, never the 2³⁰ that GiB means."""
    x = n / 1e9
    digits = 2 if x >= 1 or x <= 0 else min(12, 2 - math.floor(math.log10(x)))
    return f"{x:.{digits}f} B params"


def mean_spread(mean: float, sd: float | None, fmt: str, sep: str = " ± ") -> str:
    """A mean and its standard deviation, both in ``fmt`` (",.0f", ".1f"); a spread that ``fmt`` would
    round to 0 is given to one significant digit (150 ± 0.3), since "± 0" reads as no spread at all;
    ``sd`` None (one repetition: no spread was measured) is "n/a"."""
    spread = "n/a" if sd is None else format(sd, fmt)
    if sd is not None and sd > 0 and float(spread.replace(",", "")) == 0:
        spread = f"{sd:.1g}"
    return f"{mean:{fmt}}{sep}{spread}"


def printable(text: str, limit: int | None = 200) -> str:
    """Text from a file (a model's name, an architecture, a record's reason) safe for a terminal:
    control characters (escape sequences and line breaks included) become '?', and it is cut at
    ``limit`` characters (None: not cut)."""
    text = str(text)
    cut = text if limit is None else text[:limit]
    out = "".join(ch if ch.isprintable() else "?" for ch in cut)
    return out + ("…" if len(cut) < len(text) else "")


# What the output's symbols become on a terminal that cannot show them (PYTHONIOENCODING=ascii, a C
# locale): readable ASCII, never a UnicodeEncodeError halfway through a table; "?" for the rest.
ASCII_FALLBACK = {"·": "-", "×": "x", "≥": ">=", "≤": "<=", "±": "+-", "Δ": "d", "…": "...", "→": "->", "—": "-",
                  "–": "-", "≈": "~", "²": "^2", "µ": "u", "✓": "ok", "✗": "x", "’": "'", "“": '"', "”": '"',
                  "━": "-", "╸": "-", "╺": "-"}
ASCII_ERRORS = "ggufprof-ascii"  # the codec error handler that applies it (str.encode(..., errors=ASCII_ERRORS))


def _ascii_fallback(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    return "".join(ASCII_FALLBACK.get(ch, "?") for ch in err.object[err.start:err.end]), err.end


codecs.register_error(ASCII_ERRORS, _ascii_fallback)

