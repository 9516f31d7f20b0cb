"""Aligned plain-text tables and key/value blocks: readable in a terminal, stable for grep and awk.

No third-party table library: the CLI depends only on what the engine already ships.
"""

from collections.abc import Iterable, Sequence

_GAP = "  "


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    # One row per record, whatever the data holds.
    return text.replace("\r", " ").replace("\n", " ") or "-"


def render(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; `right` names column indexes to right-align (numbers)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    align_right = set(right)

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(widths[i]) if i in align_right else value.ljust(widths[i])
            for i, value in enumerate(values)
        ]
        return _GAP.join(parts).rstrip()

    out = [line([h.upper() for h in headers])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def render_fields(fields: Iterable[tuple[str, object]]) -> str:
    """'key: value' lines with the values aligned, for one record."""
    pairs = [(key, _cell(value)) for key, value in fields]
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{(key + ':').ljust(width + 1)} {value}" for key, value in pairs)


def age(seconds: float | None) -> str:
    """'45s', '12m05s', '3h07m', '2d04h': compact enough for a column."""
    if seconds is None:
        return "-"
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
