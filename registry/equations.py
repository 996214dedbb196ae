"""The equations the published totals set on the hidden cells, and certificates from their null space.

Part of :mod:`registry.disclosure` (its step 3): pure, exact arithmetic over fractions.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations
from math import lcm

PAIR_CANDIDATES = 12  # null-space vectors tried pairwise per cell without a box


class Equations:
    """Published totals as equations over hidden cells, eliminated exactly: their null space and certificates."""

    def __init__(self, x: list[int], equations: list[list[int]]) -> None:
        self.x = x
        self.equations = equations
        self.rows: dict[int, dict[int, Fraction | int]] = {}  # pivot cell -> {free cell: coefficient}
        self.col_rows: dict[int, set[int]] = {}  # free cell -> pivots whose row mentions it
        self._null: dict[int, dict[int, int]] = {}
        for cols in equations:
            self.add(cols)

    def add(self, cols: list[int]) -> None:
        """Bring one equation (sum of ``cols``) into reduced row echelon form with the others."""
        row: dict[int, Fraction | int] = {}
        for c in cols:
            pivot_row = self.rows.get(c)
            if pivot_row is None:
                row[c] = row.get(c, 0) + 1
                if not row[c]:
                    del row[c]
                continue
            for k, v in pivot_row.items():
                nv = row.get(k, 0) - v
                if nv:
                    row[k] = nv
                else:
                    del row[k]
        if not row:
            return  # implied by the others
        # The largest cell becomes the pivot, so the null-space vectors move the small cells.
        pivot = max(row, key=lambda c: (self.x[c], c))
        a = row.pop(pivot)
        if a != 1:
            row = {k: _tidy(Fraction(v) / a) for k, v in row.items()}
        for q in self.col_rows.pop(pivot, ()):
            other = self.rows[q]
            coef = other.pop(pivot)
            for k, v in row.items():
                nv = _tidy(other.get(k, 0) - coef * v)
                if nv:
                    other[k] = nv
                    self.col_rows.setdefault(k, set()).add(q)
                else:
                    other.pop(k, None)
                    self.col_rows[k].discard(q)
        self.rows[pivot] = row
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
        """``d`` or ``-d``, whichever keeps every hidden cell of the true table at 1 or more; checked
        against the equations too, so a certificate never rests on the elimination alone."""
        x = self.x
        if all(x[k] + v >= 1 for k, v in d.items()):
            found = d
        elif all(x[k] - v >= 1 for k, v in d.items()):
            found = {k: -v for k, v in d.items()}
        else:
            return None
        if any(sum(found.get(k, 0) for k in cols) for cols in self.equations):  # pragma: no cover - a bug
            raise AssertionError("a null-space vector that moves a published total")
        return found

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
        pool = pool[:PAIR_CANDIDATES]
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
