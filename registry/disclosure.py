"""Small-cell suppression for published count tables. Pure: no I/O, no clock, no database.

A table is a mapping from tuples of dimension values (one value per dimension, never ``None``) to
counts; only non-zero cells are listed, so an attacker knows every listed cell is at least 1.
:func:`protect` returns what may be published:

* every cell and every marginal total below ``min_cell`` is suppressed (primary suppression);
* the published marginal totals are the grand total, the total of each value of each dimension and,
  with three or more dimensions, the *lines*: one total per combination of all dimensions but one.
  A total below ``min_cell`` is suppressed and then tells nothing (it is not an equation an attacker
  can use); a total is also withdrawn when the cells under it cannot hide each other (all suppressed,
  all worth 1);
* secondary suppression hides further cells until no suppressed cell's value can be recovered from
  the published cells and totals, even knowing that every listed cell is at least 1.

How the secondary suppression works:

1. A fast pass over the totals (the classical line rule): a published total with exactly one
   suppressed cell under it gives that cell away; one whose suppressed cells can only all be 1 does
   too. Either way the smallest published cell under it is suppressed as well; iterate to a fixed point.
2. An exact audit. The published totals minus the published cells give equations
   ``sum(suppressed cells under total) = rest``. Gaussian elimination over exact fractions gives the
   null space of that system, and for every suppressed cell we look for a *certificate*: an integer
   vector ``d`` in that null space with ``d[cell] != 0`` and every suppressed cell still ``>= 1`` after
   adding it (true counts ``+ d``). Such a ``d`` is a second table consistent with everything
   published in which the cell has another value, so a certificate is a proof the cell is protected.
   A cell that is determined by the equations, pinned by the ``>= 1`` bounds or for which no
   certificate is found among the basis vectors and their pairwise combinations gets more cells
   suppressed around it (never fewer), and both steps run again.

The audit never over-trusts: a cell is declared safe only with a certificate in hand, so the only
possible error is suppressing more than strictly necessary.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations, product
from math import lcm
from typing import Any

MIN_CELL_FLOOR = 3
ALL = None  # in a total's key: the dimension summed over
_PAIR_CANDIDATES = 24  # null-space vectors tried pairwise per uncertified cell


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


def margin_subsets(n: int) -> list[tuple[int, ...]]:
    """Which dimensions each kind of published total keeps, one-way totals first, the grand total last."""
    kinds: list[tuple[int, ...]] = []
    if n >= 2:
        kinds += [(i,) for i in range(n)]
    if n >= 3:
        kinds += list(combinations(range(n), n - 1))
    kinds.append(())
    return kinds


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((0, "") if v is ALL else (1, str(v)) for v in key)


def protect(counts: Mapping[tuple[Hashable, ...], int], dims: Sequence[str], min_cell: int) -> Table:
    """Suppress what must be suppressed; the returned table is safe to publish."""
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
    keys.sort(key=_sort_key)
    values = [counts[k] for k in keys]
    state = _Suppressor(keys, values, n, min_cell)
    state.run()
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


class _Suppressor:
    """The working state: which cells and totals are withheld, and why each hidden cell is safe."""

    def __init__(self, keys: list[tuple[Any, ...]], values: list[int], n: int, min_cell: int) -> None:
        self.keys = keys
        self.values = values
        self.n = n
        self.min_cell = min_cell
        self.index = {k: c for c, k in enumerate(keys)}
        self.kinds = margin_subsets(n)
        self.gkeys: list[tuple[Any, ...]] = []
        self.members: list[list[int]] = []
        self.cell_groups: list[list[int]] = [[] for _ in values]  # one group per kind, in kind order
        for kept in self.kinds:
            index: dict[tuple[Any, ...], int] = {}
            for c, key in enumerate(keys):
                mkey = tuple(key[i] if i in kept else ALL for i in range(n))
                g = index.get(mkey)
                if g is None:
                    g = index[mkey] = len(self.gkeys)
                    self.gkeys.append(mkey)
                    self.members.append([])
                self.members[g].append(c)
                self.cell_groups[c].append(g)
        self.gtotal = [sum(values[c] for c in m) for m in self.members]
        self.pub = [t >= min_cell for t in self.gtotal]
        self.supp = [False] * len(values)
        self.cert: list[dict[int, int] | None] = [None] * len(values)  # a second table for each hidden cell
        self.dim_values = [sorted({k[j] for k in keys}, key=str) for j in range(n)]
        self.partner_limit = 8 if n <= 3 else 3
        for c, v in enumerate(values):
            if v < min_cell:
                self.suppress(c)

    def suppress(self, c: int) -> None:
        self.supp[c] = True
        for g in self.cell_groups[c]:
            if len(self.members[g]) == 1:
                self.pub[g] = False  # a total over one listed cell is that cell

    def smallest_published(self, g: int) -> int | None:
        found = [c for c in self.members[g] if not self.supp[c]]
        return min(found, key=lambda c: (self.values[c], c)) if found else None

    def run(self) -> None:
        pending = sorted((c for c in range(len(self.values)) if self.supp[c]), key=lambda c: (self.values[c], c))
        while True:
            for c in pending:
                if self.cert[c] is None:
                    self.cover(c)
            missing = [c for c in range(len(self.values)) if self.supp[c] and self.cert[c] is None]
            if not missing:
                return
            audit = _Audit(self)
            exposed = []
            for c in missing:
                if self.cert[c] is not None:
                    continue
                d = audit.certificate(c)
                if d is None:
                    exposed.append(c)
                    continue
                for k, v in d.items():
                    if v and self.cert[k] is None:
                        self.cert[k] = d
            pending = []
            touched: set[int] = set()
            for c in exposed:
                if touched.intersection(self.cell_groups[c]):
                    continue  # something next to it changed this round; audit again first
                pending += self.widen(c, touched)

    # -- hypercubes ------------------------------------------------------------------------------
    def cover(self, c: int) -> None:
        """Protect a hidden cell with the cheapest box of hidden cells around it, if there is one.

        The box takes a second value for some dimensions (the partners); its corners get +1 and -1
        alternately, which leaves every published total that sums over a partnered dimension
        unchanged. Totals that sum only over other dimensions must be withheld already. Adding the
        box (or subtracting it) to the true table keeps every corner at 1 or more: a second table
        consistent with everything published, in which each corner has another value.
        """
        key = self.keys[c]
        options: list[list[Any]] = []
        for j in range(self.n):
            ranked = []
            for v in self.dim_values[j]:
                if v == key[j]:
                    continue
                other = self.index.get(key[:j] + (v,) + key[j + 1:])
                if other is not None:
                    ranked.append((0 if self.supp[other] else self.values[other], str(v), v))
            ranked.sort()
            options.append([v for _, _, v in ranked[:self.partner_limit]])
        best: tuple[int, int, dict[int, int]] | None = None
        for size in range(self.n + 1):
            for dims in combinations(range(self.n), size):
                open_kinds = [t for t, kept in enumerate(self.kinds) if set(dims) <= set(kept)]
                for partners in product(*(options[j] for j in dims)):
                    found = self.box(key, dims, partners, open_kinds, best[0] if best else None)
                    if found is not None and (best is None or (found[0], len(found[1])) < best[:2]):
                        best = (found[0], len(found[1]), found[1])
                        if best[0] == 0:
                            break
                if best and best[0] == 0:
                    break
            if best and best[0] == 0:
                break
        if best is None:
            return
        d = best[2]
        for corner in d:
            if not self.supp[corner]:
                self.suppress(corner)
            if self.cert[corner] is None:
                self.cert[corner] = d

    def box(self, key: tuple[Any, ...], dims: tuple[int, ...], partners: tuple[Any, ...], open_kinds: list[int],
            bound: int | None) -> tuple[int, dict[int, int]] | None:
        corners: dict[int, int] = {}
        cost = 0
        for flips in product((False, True), repeat=len(dims)):
            corner_key = list(key)
            sign = 1
            for j, v, flip in zip(dims, partners, flips, strict=True):
                if flip:
                    corner_key[j] = v
                    sign = -sign
            corner = self.index.get(tuple(corner_key))
            if corner is None:
                return None  # a zero cell is known to be zero
            if not self.supp[corner]:
                cost += self.values[corner]
                if bound is not None and cost > bound:
                    return None
            for t in open_kinds:
                g = self.cell_groups[corner][t]
                if self.pub[g] and len(self.members[g]) > 1:
                    return None
            corners[corner] = sign
        values = self.values
        if all(values[k] >= 2 for k, s in corners.items() if s < 0):
            return cost, corners
        if all(values[k] >= 2 for k, s in corners.items() if s > 0):
            return cost, {k: -s for k, s in corners.items()}
        return None

    # -- when no box fits --------------------------------------------------------------------------
    def widen(self, c: int, touched: set[int]) -> list[int]:
        """Hide more around an exposed cell: the smallest published cell of its weakest published total."""
        published = [g for g in self.cell_groups[c] if self.pub[g]]
        options = []
        for g in published:
            other = self.smallest_published(g)
            if other is not None:
                hidden = sum(1 for k in self.members[g] if self.supp[k])
                options.append((hidden, self.values[other], other))
        if options:
            _, _, other = min(options)
            self.suppress(other)
            touched.update(self.cell_groups[other])
            return [other]
        if published:  # every cell around it is already hidden: withhold the smallest total
            g = min(published, key=lambda g: (self.gtotal[g], g))
            self.pub[g] = False
            touched.add(g)
            return []
        raise AssertionError("a cell under no published total cannot be exposed")  # pragma: no cover


class _Audit:
    """Exact check of the current suppression pattern; see the module docstring."""

    def __init__(self, state: _Suppressor) -> None:
        self.state = state
        self.x = state.values
        self.rows: dict[int, dict[int, Fraction | int]] = {}  # pivot cell -> {free cell: coefficient}
        self.rhs: dict[int, Fraction | int] = {}
        self.col_rows: dict[int, set[int]] = {}  # free cell -> pivots whose row mentions it
        self._null: dict[int, dict[int, int]] = {}
        equations = []
        for g, members in enumerate(state.members):
            if state.pub[g]:
                hidden = [c for c in members if state.supp[c]]
                if hidden:
                    equations.append((hidden, state.gtotal[g] - sum(self.x[c] for c in members if not state.supp[c])))
        equations.sort(key=lambda e: len(e[0]))
        for cols, rest in equations:
            self.add(cols, rest)

    def add(self, cols: list[int], rest: int) -> None:
        row: dict[int, Fraction | int] = {}
        rhs: Fraction | int = rest
        for c in cols:
            pivot_row = self.rows.get(c)
            if pivot_row is None:
                row[c] = row.get(c, 0) + 1
                if not row[c]:
                    del row[c]
                continue
            rhs -= self.rhs[c]
            for k, v in pivot_row.items():
                nv = row.get(k, 0) - v
                if nv:
                    row[k] = nv
                else:
                    del row[k]
        if not row:
            return  # implied by the others (the totals are consistent by construction)
        # The largest cell becomes the pivot, so the null-space vectors move the small cells.
        pivot = max(row, key=lambda c: (self.x[c], c))
        a = row.pop(pivot)
        if a != 1:
            row = {k: _tidy(v / a) for k, v in row.items()}
            rhs = _tidy(rhs / a)
        for q in self.col_rows.pop(pivot, ()):
            other = self.rows[q]
            coef = other.pop(pivot)
            self.rhs[q] = _tidy(self.rhs[q] - coef * rhs)
            for k, v in row.items():
                nv = _tidy(other.get(k, 0) - coef * v)
                if nv:
                    other[k] = nv
                    self.col_rows.setdefault(k, set()).add(q)
                else:
                    other.pop(k, None)
                    self.col_rows[k].discard(q)
        self.rows[pivot] = row
        self.rhs[pivot] = rhs
        for k in row:
            self.col_rows.setdefault(k, set()).add(pivot)

    def null_vector(self, free: int) -> dict[int, int]:
        """The basis vector of the null space for a free cell, scaled to primitive integers."""
        found = self._null.get(free)
        if found is None:
            vec: dict[int, Fraction | int] = {free: 1}
            for p in self.col_rows.get(free, ()):
                vec[p] = -self.rows[p][free]
            found = self._null[free] = _integral(vec)
        return found

    def feasible(self, d: dict[int, int]) -> dict[int, int] | None:
        """``d`` or ``-d``, whichever keeps every hidden cell of the true table at 1 or more."""
        x = self.x
        if all(x[k] + v >= 1 for k, v in d.items()):
            return d
        if all(x[k] - v >= 1 for k, v in d.items()):
            return {k: -v for k, v in d.items()}
        return None

    def certificate(self, c: int) -> dict[int, int] | None:
        """A change to the hidden cells, consistent with everything published, that moves cell ``c``."""
        if c in self.rows:
            candidates = sorted(self.rows[c])
        else:
            candidates = [c]
        if not candidates:
            return None  # determined by the published totals
        for f in candidates:
            d = self.feasible(self.null_vector(f))
            if d is not None:
                return d
        # Combinations: a candidate with another candidate or with a neighbour in the null space.
        pool = list(candidates)
        for f in candidates:
            for p in self.null_vector(f):
                for k in self.rows.get(p, ()):
                    if k not in pool:
                        pool.append(k)
        pool = pool[:_PAIR_CANDIDATES]
        for f, g in combinations(pool, 2):
            u, v = self.null_vector(f), self.null_vector(g)
            for su, sv in ((1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)):
                d = dict(u) if su == 1 else {k: su * w for k, w in u.items()}
                for k, w in v.items():
                    nv = d.get(k, 0) + sv * w
                    if nv:
                        d[k] = nv
                    else:
                        d.pop(k, None)
                if d.get(c) and (found := self.feasible(d)) is not None:
                    return found
        return None


def _tidy(v: Fraction | int) -> Fraction | int:
    if isinstance(v, Fraction) and v.denominator == 1:
        return v.numerator
    return v


def _integral(vec: dict[int, Fraction | int]) -> dict[int, int]:
    scale = lcm(*(v.denominator for v in vec.values() if isinstance(v, Fraction))) if any(
        isinstance(v, Fraction) for v in vec.values()) else 1
    return {k: int(v * scale) for k, v in vec.items()}
