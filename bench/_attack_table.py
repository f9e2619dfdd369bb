"""What every part of the attack bench reports: cases tried, held, broke, and which of them are known defects.

A part adds one `Case` per attack it made. A case that breaks a guarantee prints its detail under the table, so an
operator sees what broke, not only how often. ``fixed`` names the regression test of a defect this bench found and
that is now fixed: the case then holds, and the table says it once broke.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Case:
    """One attack and its outcome."""

    area: str
    name: str
    held: bool
    detail: str = ""
    known: str = ""
    """A known, separately filed defect this case measures (e.g. ``issue 23``): reported, not counted as broke."""
    fixed: str = ""
    """The regression test of a defect this bench found and that was fixed (the case held after the fix)."""


@dataclass
class Report:
    """Every case of a bench run, grouped by area in the order the areas first reported."""

    cases: list[Case] = field(default_factory=list)

    def add(self, area: str, name: str, held: bool, detail: str = "", *, known: str = "", fixed: str = "") -> None:
        """Record one case."""
        self.cases.append(Case(area, name, held, detail, known, fixed))

    @property
    def broke(self) -> list[Case]:
        """Cases that broke a guarantee and are not a known, separately filed defect."""
        return [c for c in self.cases if not c.held and not c.known]

    def print(self, console: Console, *, verbose: bool = False) -> None:
        """The table of counts per area, then every broken or known case (every case, `verbose`) with its detail."""
        by_area: dict[str, list[Case]] = defaultdict(list)
        for case in self.cases:
            by_area[case.area].append(case)
        table = Table(title="attack bench", header_style="bold")
        for column in ("area", "cases", "held", "broke", "known (filed)", "fixed here"):
            table.add_column(column, justify="left" if column == "area" else "right")
        for area, cases in by_area.items():
            table.add_row(
                area,
                str(len(cases)),
                str(sum(c.held for c in cases)),
                str(sum(not c.held and not c.known for c in cases)),
                str(sum(not c.held and bool(c.known) for c in cases)),
                str(sum(bool(c.fixed) for c in cases)),
            )
        console.print(table)
        for case in self.cases:
            if not case.held or verbose:
                label = "held" if case.held else f"known, {case.known}" if case.known else "BROKE"
                console.print(f"  [{label}] {case.area} / {case.name}: {case.detail}", markup=False, highlight=False)
        fixed = [c for c in self.cases if c.fixed]
        if fixed:
            console.print("  fixed by this bench's findings (regression tests):", highlight=False)
            for case in fixed:
                console.print(f"    {case.area} / {case.name}: {case.fixed}", markup=False, highlight=False)
