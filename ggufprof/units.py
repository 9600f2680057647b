"""Human-readable sizes for tables (exact bytes stay in JSON), and text from files made safe to show."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def human_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def printable(text: str, limit: int | None = 200) -> str:
    """Text from a file (a model's name, an architecture, a record's reason) safe for a terminal:
    control characters (escape sequences and line breaks included) become '?', and it is cut at
    ``limit`` characters (None: not cut)."""
    text = str(text)
    cut = text if limit is None else text[:limit]
    out = "".join(ch if ch.isprintable() else "?" for ch in cut)
    return out + ("…" if len(cut) < len(text) else "")
