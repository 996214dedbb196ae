"""The secondary suppression search of :mod:`registry.disclosure`: boxes, then the local elimination.

One :class:`Suppressor` works on one table (its cells in a fixed order, its totals grouped by the kind of
total); :mod:`registry.disclosure` explains the method and builds the tables it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import combinations, product
from operator import itemgetter
from typing import Any

from registry.equations import Equations

ALL = None  # in a total's key: the dimension summed over
_NEIGHBOURHOOD = 160  # hidden cells around a cell taken into its local elimination
_SEARCH_AFTER_FIRST = 8  # boxes weighed once one fits (weighing all hides ~10 % less, takes twice as long)


@dataclass
class Work:
    """How much searching protecting a table took (pass one to :func:`protect` to count)."""

    boxes: int = 0  # boxes weighed as certificates
    eliminations: int = 0  # cells given to the elimination for want of a box


def margin_subsets(n: int) -> list[tuple[int, ...]]:
    """Which dimensions each kind of published total keeps, one-way totals first, the grand total last."""
    kinds: list[tuple[int, ...]] = []
    if n >= 2:
        kinds += [(i,) for i in range(n)]
    if n >= 3:
        kinds += list(combinations(range(n), n - 1))
    kinds.append(())
    return kinds


def picker(kept: tuple[int, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function giving a key's values at ``kept``, as a tuple (once per cell and kind of total: made fast)."""
    if len(kept) >= 2:
        return itemgetter(*kept)
    if kept:
        position = kept[0]
        return lambda key: (key[position],)
    return lambda key: ()


class Suppressor:
    """The working state: which cells and totals are withheld, and why each hidden cell is safe."""

    def __init__(self, keys: list[tuple[Any, ...]], values: list[int], n: int, min_cell: int, work: Work,
                 forced: AbstractSet[tuple[Any, ...]] = frozenset()) -> None:
        self.keys = keys
        self.work = work
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
            members = self.members
            pick = picker(kept)
            for c, key in enumerate(keys):
                short = pick(key)
                g = index.get(short)
                if g is None:
                    g = index[short] = len(members)
                    full: list[Any] = [ALL] * n
                    for i, value in zip(kept, short, strict=True):
                        full[i] = value
                    self.gkeys.append(tuple(full))
                    members.append([c])
                else:
                    members[g].append(c)
                self.cell_groups[c].append(g)
        self.gkind = [0] * len(self.gkeys)
        for groups in self.cell_groups:
            for t, g in enumerate(groups):
                self.gkind[g] = t
        self.gtotal = [sum(values[c] for c in m) for m in self.members]
        self.pub = [t >= min_cell and k not in forced for t, k in zip(self.gtotal, self.gkeys, strict=True)]
        self.small = [g for g, t in enumerate(self.gtotal) if t < min_cell]  # hidden, and must stay unknown
        self.gcert: dict[int, dict[int, int]] = {}
        self.supp = [False] * len(values)
        self.cert: list[dict[int, int] | None] = [None] * len(values)  # a second table for each hidden cell
        # The kind of total that runs along dimension j: the one keeping every other dimension.
        self.line_kind = [self.kinds.index(tuple(i for i in range(n) if i != j)) for j in range(n)]
        self.partner_limit = 8 if n <= 3 else 3
        self.withdrawn = 0  # totals withdrawn beyond the primary rule, to notice progress
        self._open_kinds: dict[tuple[int, ...], list[int]] = {}  # worked out once per set of dimensions
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
        while pending:
            for c in pending:  # grows while it runs: cells hidden to give slack need boxes too
                if self.cert[c] is None and self.cover(c) is None:
                    withdrawn = self.withdrawn
                    more = self.ensure_slack(c)
                    pending += more
                    if more or withdrawn != self.withdrawn:
                        self.cover(c)
            # No box: a certificate from the elimination around the cell, else a box that withdraws.
            for c in range(len(self.values)):
                if not self.supp[c] or self.cert[c] is not None:
                    continue
                self.work.eliminations += 1
                d = Equations(self.values, self.neighbourhood_equations(c)).certificate(c)
                if d is None or not d.get(c):
                    if self.cover(c, withdraw=True) is None:  # pragma: no cover - the empty box always fits
                        raise AssertionError("no way to protect a cell")
                    continue
                for k, v in d.items():
                    if v and self.cert[k] is None:
                        self.cert[k] = d
            self.protect_totals()
            pending = [c for c in range(len(self.values)) if self.supp[c] and self.cert[c] is None]

    def protect_totals(self) -> None:
        """Give every total below ``min_cell`` a certificate too.

        Such a total is the sum of hidden cells; a box that partners only dimensions the total
        keeps moves it by one, provided the totals of the same kind through the other corners are
        withheld (withdrawn if need be: the cost of a box counts their values).
        """
        for g in self.small:
            if g in self.gcert:
                continue
            members = set(self.members[g])
            moving = next((d for c in self.members[g] if (d := self.cert[c]) is not None
                           and sum(v for k, v in d.items() if k in members) != 0), None)
            if moving is None:
                for c in sorted(self.members[g], key=lambda c: (-self.values[c], c)):
                    moving = self.cover(c, withdraw=True, within=self.kinds[self.gkind[g]])
                    if moving is not None:
                        break
            if moving is None:  # pragma: no cover - the box with no partner always fits
                raise AssertionError("no way to protect a small total")
            self.gcert[g] = moving

    def neighbourhood_equations(self, c: int) -> list[list[int]]:
        """The published totals touching the hidden cells near ``c``, restricted to those cells.

        A change that is zero outside these cells and balances each of these equations balances
        every published total of the table.
        """
        near = {c: None}
        frontier = [c]
        while frontier and len(near) < _NEIGHBOURHOOD:
            following = []
            for k in frontier:
                for g in self.cell_groups[k]:
                    if not self.pub[g]:
                        continue
                    for m in self.members[g]:
                        if self.supp[m] and m not in near:
                            near[m] = None
                            following.append(m)
                            if len(near) >= _NEIGHBOURHOOD:
                                break
                    if len(near) >= _NEIGHBOURHOOD:
                        break
            frontier = following
        equations: dict[int, list[int]] = {}
        for k in near:
            for g in self.cell_groups[k]:
                if self.pub[g]:
                    equations.setdefault(g, []).append(k)
        return sorted(equations.values(), key=len)

    # -- hypercubes ------------------------------------------------------------------------------
    def ensure_slack(self, c: int) -> list[int]:
        """Make sure every published total through ``c`` has another hidden cell that can move against it.

        A hidden cell worth 1 can only go up, so the total needs another hidden cell worth 2 or more
        to go down; any other hidden cell will do for a larger one. Hides the smallest published cell
        of a total that lacks one, or withdraws the total when all its cells are hidden; returns the
        newly hidden cells.
        """
        hidden = []
        for g in self.cell_groups[c]:
            if not self.pub[g]:
                continue
            floor = 2 if self.values[c] == 1 else 1
            if any(k != c and self.supp[k] and self.values[k] >= floor for k in self.members[g]):
                continue
            other = self.smallest_published(g)
            if other is None:
                self.pub[g] = False
                self.withdrawn += 1
            else:
                self.suppress(other)
                hidden.append(other)
        return hidden

    def cover(self, c: int, withdraw: bool = False, within: tuple[int, ...] | None = None) -> dict[int, int] | None:
        """Protect a hidden cell with the cheapest box of hidden cells around it, if there is one.

        The box takes a second value for some dimensions (the partners); its corners get +1 and -1
        alternately, which leaves every published total that sums over a partnered dimension
        unchanged. Totals that sum only over other dimensions must be withheld already, or, with
        ``withdraw``, are withdrawn (costing their value). Adding the box (or subtracting it) to the
        true table keeps every corner at 1 or more: a second table consistent with everything
        published, in which each corner has another value. ``within`` limits the partnered
        dimensions (to move a total that keeps those). Returns the box as a change to the table.
        """
        found = self.search_box(c, withdraw, within)
        if found is None:
            return None
        d, totals = found
        for g in totals:
            self.pub[g] = False
            self.withdrawn += 1
        moved: dict[int, int] = {}
        for corner, sign in d.items():
            for g in self.cell_groups[corner]:
                moved[g] = moved.get(g, 0) + sign
        if any(v and self.pub[g] and len(self.members[g]) > 1 for g, v in moved.items()):  # pragma: no cover
            raise AssertionError("a box that moves a published total")
        for corner in d:
            if not self.supp[corner]:
                self.suppress(corner)
            if self.cert[corner] is None:
                self.cert[corner] = d
        return d

    def search_box(self, c: int, withdraw: bool,
                   within: tuple[int, ...] | None) -> tuple[dict[int, int], set[int]] | None:
        """The box :meth:`cover` takes, with the totals it withdraws; None when no box fits.

        Returns on the first acceptable box: one that costs nothing, or the cheapest once
        :data:`_SEARCH_AFTER_FIRST` more have been weighed after the first that fits.
        """
        key = self.keys[c]
        options = self.neighbours(c, self.partner_limit * (2 if withdraw else 1))
        best: tuple[int, int, dict[int, int], set[int]] | None = None  # cost, corner count, box, totals
        effort = _SEARCH_AFTER_FIRST
        space = tuple(range(self.n)) if within is None else within
        sizes = range(len(space), -1, -1) if withdraw else range(len(space) + 1)
        for dims in (dims for size in sizes for dims in combinations(space, size)):
            open_kinds = self.open_kinds(dims)
            if not withdraw and any(self.pub[g] and len(self.members[g]) > 1
                                    for g in (self.cell_groups[c][t] for t in open_kinds)):
                continue  # a total through the cell itself would move
            bound = [best[0] if best else None]
            for partners in self.partner_choices(options, dims, bound):
                found = self.box(key, dims, partners, open_kinds, bound[0], withdraw)
                if best is not None:
                    effort -= 1
                if found is not None and (best is None or (found[0], len(found[1])) < best[:2]):
                    best = (found[0], len(found[1]), found[1], found[2])
                    bound[0] = best[0]
                if best is not None and (best[0] == 0 or effort <= 0):
                    return best[2], best[3]
        return None if best is None else (best[2], best[3])

    def open_kinds(self, dims: tuple[int, ...]) -> list[int]:
        """The kinds of totals that keep every dimension in ``dims`` (the ones a box along ``dims`` may move)."""
        found = self._open_kinds.get(dims)
        if found is None:
            found = self._open_kinds[dims] = [t for t, kept in enumerate(self.kinds) if set(dims) <= set(kept)]
        return found

    def neighbours(self, c: int, limit: int) -> list[list[tuple[int, Any]]]:
        """Per dimension, the cheapest ``limit`` partners for ``c``'s box: (cost of the neighbour, value).

        Hidden neighbours cost nothing; a neighbour worth 1 is no partner for a cell worth 1 (either it
        or the cell would have to drop to 0).
        """
        options: list[list[tuple[int, Any]]] = []
        for j in range(self.n):
            ranked = []
            for other in self.members[self.cell_groups[c][self.line_kind[j]]]:  # the listed cells along j
                value = self.values[other]
                if other == c or value == 1 and self.values[c] == 1:
                    continue
                v = self.keys[other][j]
                ranked.append((0 if self.supp[other] else value, value == 1, str(v), v))
            ranked.sort()
            options.append([(r[0], r[-1]) for r in ranked[:limit]])
        return options

    @staticmethod
    def partner_choices(options: list[list[tuple[int, Any]]], dims: tuple[int, ...],
                        bound: list[int | None]) -> Iterator[tuple[Any, ...]]:
        """Partner values for ``dims``, skipping choices whose neighbours alone cost as much as ``bound[0]``."""
        if not dims:
            yield ()
            return
        chosen: list[Any] = []

        def walk(depth: int, spent: int) -> Iterator[tuple[Any, ...]]:
            for cost, value in options[dims[depth]]:
                if bound[0] is not None and spent + cost >= bound[0]:
                    break  # sorted by cost: the rest are dearer
                chosen.append(value)
                if depth + 1 == len(dims):
                    yield tuple(chosen)
                else:
                    yield from walk(depth + 1, spent + cost)
                chosen.pop()

        yield from walk(0, 0)

    def box(self, key: tuple[Any, ...], dims: tuple[int, ...], partners: tuple[Any, ...], open_kinds: list[int],
            bound: int | None, withdraw: bool) -> tuple[int, dict[int, int], set[int]] | None:
        """The box's corners with their signs, its cost and the totals it needs withdrawn; None if impossible."""
        self.work.boxes += 1
        corners: dict[int, int] = {}
        totals: set[int] = set()
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
            for t in open_kinds:
                g = self.cell_groups[corner][t]
                if self.pub[g] and len(self.members[g]) > 1 and g not in totals:
                    if not withdraw:
                        return None
                    totals.add(g)
                    cost += self.gtotal[g]
            if bound is not None and cost > bound:
                return None
            corners[corner] = sign
        values = self.values
        if all(values[k] >= 2 for k, s in corners.items() if s < 0):
            return cost, corners, totals
        if all(values[k] >= 2 for k, s in corners.items() if s > 0):
            return cost, {k: -s for k, s in corners.items()}, totals
        return None
