"""`Report`: what a reproduction returns (our numbers beside the paper's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report"]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return str(v)


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |"
              for r in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Report:
    """Result of a ``papers.<name>.run()``.

    Attributes
    ----------
    title : str
    table : list of dict
        Our measured rows.
    paper : list of dict
        What the paper reports (numbers or direction of effect).
    notes : list of str
        Setup and honest remarks (e.g. where a result disagrees).
    """

    title: str
    table: list[dict]
    paper: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The report as Markdown: title, our table, the paper's, notes."""
        out = [f"# {self.title}\n", "## Measured here\n", _markdown_table(self.table)]
        if self.paper:
            out += ["## Reported in the paper\n", _markdown_table(self.paper)]
        if self.notes:
            out += ["## Notes\n"] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()
