"""Small-cell suppression for published count tables. Pure: no I/O, no clock, no database.

A table is a mapping from tuples of dimension values (one value per dimension, never ``None``) to
counts; only non-zero cells are listed, so an attacker knows every listed cell is at least 1.
:func:`protect` returns what may be published:

* every cell and every marginal total below ``min_cell`` is suppressed (primary suppression);
* the published marginal totals are the grand total, the total of each value of each dimension and,
  with three or more dimensions, the *lines*: one total per combination of all dimensions but one.
  A total below ``min_cell`` is suppressed and then tells nothing (it is not an equation an attacker
  can use); a total over a single listed cell is that cell and is hidden with it; a total is also
  withdrawn when the cells under it cannot hide each other (all hidden, all worth 1);
* secondary suppression hides further cells until no suppressed cell's value can be recovered from
  the published cells and totals, even knowing that every listed cell is at least 1.

How the secondary suppression works. The published totals minus the published cells give linear
equations ``sum(hidden cells under a total) = rest``. A hidden cell is safe when we hold a
*certificate* for it: an integer change ``d`` to the hidden cells that keeps every published total
as it is (``A d = 0``), moves the cell (``d[cell] != 0``) and keeps every hidden cell of the true
table at 1 or more (``x + d >= 1``). ``x + d`` is then a second table consistent with everything
published in which the cell has another value; nothing is declared safe without one, so the only
possible error is hiding more than strictly necessary.

1. Boxes (the hypercube method). For each hidden cell, the cheapest box around it: a second value
   for some of the dimensions, corners alternately +1 and -1. Every total that sums over a
   partnered dimension sees +1 and -1 cancel; totals that sum only over other dimensions must
   already be withheld. The published corners are hidden too, and the box is the certificate of
   all its corners. Cost: the sum of the newly hidden counts.
2. A hidden cell worth 1 can only go up, so every published total through it needs another hidden
   cell worth 2 or more (any other hidden cell for larger ones): the smallest published cell is
   hidden where one is missing, and a box is looked for again.
3. Failing that, Gaussian elimination over exact fractions on the equations around the cell
   (:mod:`registry.equations`) gives a basis of their null space; its vectors and their pairwise
   combinations are tried as certificates (a vector that is zero outside a neighbourhood of the
   cell and balances every published total touching it balances every published total of the table).
4. A cell still without one (determined by the totals, or pinned by the ``>= 1`` bounds) gets the
   cheapest box that withdraws the totals it would move, counting their values as its cost; the
   box of the cell alone, withdrawing every total through it, always fits.
5. Totals below ``min_cell`` get certificates too (a change that moves their sum): with all cells
   protected, "grand total minus the other rows" would still give a small row away. A box whose
   partnered dimensions are all kept by the total moves it by one; the totals of the same kind it
   would move elsewhere are withdrawn if they are not hidden already.

Totals are published consistently with smaller tables: the one-way (and line) tables are protected
on their own first and whatever they hide stays hidden in the bigger table, so asking for
``area`` and for ``area, gender`` does not give away, side by side, an area either one hides. (The
reverse is not covered: a total the bigger table withdraws for its own sake may be published by a
smaller table; withdrawals are a last resort, so this needs sparse tables of cells worth 1.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.suppressor import ALL, Suppressor, Work, margin_subsets, picker

__all__ = ["ALL", "MIN_CELL_FLOOR", "DisclosureError", "Entry", "Table", "Work", "protect"]

MIN_CELL_FLOOR = 3


class DisclosureError(ValueError):
    """A table or threshold that cannot be published safely."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One published number: a cell, or a total (``ALL`` at the positions summed over)."""

    key: tuple[Any, ...]
    count: int | None  # None when suppressed
    suppressed: bool


@dataclass(frozen=True, slots=True)
class Table:
    """The publishable form of a count table."""

    dims: tuple[str, ...]
    min_cell: int
    cells: tuple[Entry, ...]
    totals: tuple[Entry, ...]  # marginal totals, without the grand total
    total: Entry  # the grand total

    @property
    def suppressed_cells(self) -> int:
        return sum(1 for e in self.cells if e.suppressed)


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((0, "") if v is ALL else (1, str(v)) for v in key)


def protect(counts: Mapping[tuple[Any, ...], int], dims: Sequence[str], min_cell: int,
            work: Work | None = None) -> Table:
    """Suppress what must be suppressed; the returned table is safe to publish. ``work`` counts the search."""
    if not isinstance(min_cell, int) or min_cell < MIN_CELL_FLOOR:
        raise DisclosureError(f"min_cell must be an integer of at least {MIN_CELL_FLOOR}")
    dims = tuple(dims)
    if not dims or len(set(dims)) != len(dims):
        raise DisclosureError("dims must be one or more distinct names")
    n = len(dims)
    keys: list[tuple[Any, ...]] = []
    for key, value in counts.items():
        if not isinstance(key, tuple) or len(key) != n or any(v is ALL for v in key):
            raise DisclosureError(f"cell key {key!r} does not have one value per dimension")
        if not isinstance(value, int) or value < 0:
            raise DisclosureError(f"cell {key!r} has a count that is not a whole number >= 0")
        if value:
            keys.append(key)
    state = _solve({k: counts[k] for k in keys}, tuple(range(n)), min_cell, {}, work or Work())
    keys, values = state.keys, state.values
    cells = tuple(Entry(k, None if state.supp[i] else values[i], state.supp[i]) for i, k in enumerate(keys))
    totals: list[Entry] = []
    grand = Entry((ALL,) * n, 0, False)  # nothing listed: a zero reveals no one
    for g, key in enumerate(state.gkeys):
        entry = Entry(key, state.gtotal[g] if state.pub[g] else None, not state.pub[g])
        if all(v is ALL for v in key):
            grand = entry
        else:
            totals.append(entry)
    return Table(dims, min_cell, cells, tuple(totals), grand)


def _solve(counts: dict[tuple[Any, ...], int], dims: tuple[int, ...], min_cell: int,
           memo: dict[tuple[int, ...], Suppressor], work: Work) -> Suppressor:
    """Protect a table whose keys follow ``dims`` (indices into the caller's dimensions).

    Each one-way (and, with three or more dimensions, each line) table of totals is protected on its
    own first, and the totals it hides stay hidden here: a total published with this table is then
    published in the smaller table too, so putting the two side by side gives nothing away that
    either hides.
    """
    found = memo.get(dims)
    if found is not None:
        return found
    n = len(dims)
    forced: set[tuple[Any, ...]] = set()
    if n >= 2:
        for kept in margin_subsets(n):
            if not kept:
                continue
            sub: dict[tuple[Any, ...], int] = {}
            pick = picker(kept)
            for key, value in counts.items():
                sub_key = pick(key)
                sub[sub_key] = sub.get(sub_key, 0) + value
            inner = _solve(sub, tuple(dims[i] for i in kept), min_cell, memo, work)

            def widen(short: tuple[Any, ...], kept: tuple[int, ...] = kept) -> tuple[Any, ...]:
                full: list[Any] = [ALL] * n
                for position, value in zip(kept, short, strict=True):
                    full[position] = value
                return tuple(full)

            forced.update(widen(k) for c, k in enumerate(inner.keys) if inner.supp[c])
            forced.update(widen(k) for g, k in enumerate(inner.gkeys) if not inner.pub[g])
    keys = sorted(counts, key=_sort_key)
    state = Suppressor(keys, [counts[k] for k in keys], n, min_cell, work, forced)
    state.run()
    memo[dims] = state
    return state
