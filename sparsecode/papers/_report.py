"""`Report`: what a reproduction returns (our numbers beside the paper's)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._utils import atomic_write

__all__ = ["Report", "effect_notes", "figure_path", "finish", "rows_by_group"]


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
    figures : list of str
        Paths of the figures the run wrote (its ``out_dir``).
    """

    title: str
    table: list[dict]
    paper: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The report as Markdown: title, our table, the paper's, notes."""
        out = [f"# {self.title}\n", "## Measured here\n", _markdown_table(self.table)]
        if self.paper:
            out += ["## Reported in the paper\n", _markdown_table(self.paper)]
        if self.notes:
            out += ["## Notes\n"] + [f"- {n}" for n in self.notes]
        if self.figures:
            out += ["\n## Figures\n"] + [f"- `{f}`" for f in self.figures]
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write ``report.md`` and ``report.json`` (every field) into ``out_dir``.

        Each file is written whole or not at all (atomic replace).

        Parameters
        ----------
        out_dir : str or path-like
            Folder, created if missing.

        Returns
        -------
        pathlib.Path
            The Markdown file.

        Examples
        --------
        >>> import json, tempfile
        >>> from sparsecode.papers import Report
        >>> out = tempfile.mkdtemp()
        >>> path = Report("demo", [{"method": "a", "fvu": 0.25}]).write(out)
        >>> path.name, json.loads((path.parent / "report.json").read_text())["title"]
        ('report.md', 'demo')
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(self), indent=1, default=str, allow_nan=True)
        for name, body in (("report.md", self.to_markdown()), ("report.json", text)):
            atomic_write(out / name, lambda tmp, b=body: Path(tmp).write_text(
                b, encoding="utf-8"))
        return out / "report.md"


def finish(report: Report, out_dir: str | os.PathLike | None) -> Report:
    """``report``, written into ``out_dir`` first when one is given."""
    if out_dir is not None:
        report.write(out_dir)
    return report


def figure_path(out_dir: str | os.PathLike | None, name: str) -> Path | None:
    """``out_dir / name`` (the folder created), or None when ``out_dir`` is None.

    Examples
    --------
    >>> from sparsecode.papers._report import figure_path
    >>> figure_path(None, "atoms.png") is None
    True
    """
    if out_dir is None:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def rows_by_group(table: list[dict], group: str = "vectors",
                  key: str = "method") -> dict[str, dict[str, dict]]:
    """The rows of ``table`` by ``group`` value, then by ``key`` value
    (first-seen order kept)."""
    out: dict[str, dict[str, dict]] = {}
    for row in table:
        out.setdefault(row[group], {})[row[key]] = row
    return out


def effect_notes(table: list[dict], method: str, label: str, *,
                 similarity: tuple[str, ...] = ("ws353", "simlex999"),
                 min_sparsity: float | None = None, drop: float = 0.03) -> list[str]:
    """Honest remarks where ``method`` misses the paper's direction of effect.

    For each kind of vectors (``vectors`` column), ``method``'s row is
    compared with the ``dense`` row: sparsity below ``min_sparsity``, a loss
    of more than ``drop`` on any ``similarity`` column, and an intrusion
    ratio not above dense each give a note.

    Parameters
    ----------
    table : list of dict
        Rows with ``vectors``, ``method``, ``sparsity``, the similarity
        columns and ``intrusion_ratio``.
    method : str
        The row compared with ``dense``.
    label : str
        How the notes name it.
    similarity : tuple of str
        Similarity columns checked.
    min_sparsity : float, optional
        The paper's fraction of zeros (no check when None).
    drop : float
        Similarity loss tolerated.

    Returns
    -------
    list of str
    """
    notes = []
    for kind, rows in rows_by_group(table).items():
        dense, row = rows["dense"], rows[method]
        if min_sparsity is not None and row["sparsity"] < min_sparsity:
            notes.append(f"{kind}: {label} has {row['sparsity']:.0%} zeros, short "
                         f"of the paper's {min_sparsity:.0%}.")
        lost = [c for c in similarity if row[c] < dense[c] - drop]
        if lost:
            notes.append(f"{kind}: {label} loses more than {100 * drop:.0f} points "
                         f"on {', '.join(lost)} here, unlike the paper.")
        if row["intrusion_ratio"] <= dense["intrusion_ratio"]:
            notes.append(f"{kind}: {label} shows no intrusion gain over dense on "
                         "this automatic score, unlike the paper's human evaluation.")
    return notes
