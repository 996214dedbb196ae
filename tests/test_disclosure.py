"""Small-cell suppression, checked by brute force on many random tables.

The checker knows only what a reader of the published table knows: which cells are listed (so each
is at least 1), the published cells and the published totals. For every suppressed cell (and every
suppressed total below min_cell) it searches the integer tables consistent with all of that for one
where the cell has a different value: first as a small change to the true table (every hidden cell
moved by at most 2), then over all assignments (each suppressed cell >= 1 and at most what its
published totals leave) with a branch-and-propagate search that ends exhaustive, so "no other value
found" means the value is recoverable. It shares no code with registry.disclosure.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from typing import Any

import pytest

from registry.disclosure import ALL, DisclosureError, Entry, Table, Work, protect

Key = tuple[Any, ...]
UNBOUNDED = 10**9


def random_table(rng: random.Random) -> tuple[dict[Key, int], list[str], int]:
    n = rng.randint(1, 3)
    dims = ["abc"[i] for i in range(n)]
    sizes = [rng.randint(2, 4) for _ in range(n)]
    counts: dict[Key, int] = {}
    style = rng.random()
    for key in itertools.product(*[[f"{d}{v}" for v in range(size)] for d, size in zip(dims, sizes, strict=True)]):
        roll = rng.random()
        if roll < 0.2:
            value = 0
        elif roll < 0.2 + 0.5 * style + 0.1:
            value = rng.randint(1, 4)  # many small ones
        else:
            value = rng.randint(1, 30)
        if value:
            counts[key] = value
    return counts, dims, rng.randint(3, 10)


def matches(total_key: Key, cell_key: Key) -> bool:
    return all(t is ALL or t == c for t, c in zip(total_key, cell_key, strict=True))


def constraints(table: Table) -> tuple[list[Key], list[tuple[list[int], int]]]:
    """What a reader can write down: suppressed cells as unknowns, one equation per published total."""
    unknown = [e.key for e in table.cells if e.suppressed]
    index = {k: i for i, k in enumerate(unknown)}
    equations = []
    for total in (*table.totals, table.total):
        if total.suppressed:
            continue
        assert total.count is not None
        under = [e for e in table.cells if matches(total.key, e.key)]
        rest = total.count - sum(e.count for e in under if not e.suppressed)  # type: ignore[misc]
        cols = [index[e.key] for e in under if e.suppressed]
        equations.append((cols, rest))
    return unknown, equations


class Unsolvable(Exception):
    pass


class System:
    """Equations over the unknowns, with the equations each unknown is in."""

    def __init__(self, size: int, equations: list[tuple[list[int], int]]) -> None:
        # A total nested in another gives the difference too: the search refutes much faster with it.
        derived = []
        sets = [frozenset(cols) for cols, _ in equations]
        for (outer, rest_outer), big in zip(equations, sets, strict=True):
            for (_, rest_inner), small in zip(equations, sets, strict=True):
                if small < big:
                    derived.append(([c for c in outer if c not in small], rest_outer - rest_inner))
        self.equations = equations + derived
        equations = self.equations
        self.of: list[list[int]] = [[] for _ in range(size)]
        for e, (cols, _) in enumerate(equations):
            for c in cols:
                self.of[c].append(e)

    def propagate(self, lo: list[int], hi: list[int], start: list[int]) -> None:
        """Tighten the bounds from the equations in ``start`` onwards; Unsolvable when they cross."""
        queue = deque(start)
        queued = set(start)
        while queue:
            e = queue.popleft()
            queued.discard(e)
            cols, rest = self.equations[e]
            low = sum(lo[c] for c in cols)
            high = sum(hi[c] for c in cols)
            if low > rest or high < rest:
                raise Unsolvable
            for c in cols:
                new_hi = rest - (low - lo[c])
                new_lo = rest - (high - hi[c])
                moved = False
                if new_hi < hi[c]:
                    hi[c] = new_hi
                    moved = True
                if new_lo > lo[c]:
                    lo[c] = new_lo
                    moved = True
                if lo[c] > hi[c]:
                    raise Unsolvable
                if moved:
                    for other in self.of[c]:
                        if other not in queued:
                            queued.add(other)
                            queue.append(other)

    def solvable(self, lo: list[int], hi: list[int], guide: list[int], budget: list[int] | None = None,
                 start: list[int] | None = None) -> bool:
        """Whether some integer assignment within the bounds satisfies every equation.

        A complete depth-first search with bounds propagation; values are tried nearest to ``guide``
        first, so a second table close to the true one is found quickly. With a ``budget`` (a
        one-element node counter) it gives up by raising OutOfBudget.
        """
        if budget is not None:
            budget[0] -= 1
            if budget[0] < 0:
                raise OutOfBudget
        lo, hi = list(lo), list(hi)
        try:
            self.propagate(lo, hi, list(range(len(self.equations))) if start is None else start)
        except Unsolvable:
            return False
        open_vars = [c for c in range(len(lo)) if self.of[c] and hi[c] > lo[c]]
        if not open_vars:
            return all(sum(lo[c] for c in cols) == rest for cols, rest in self.equations)
        c = min(open_vars, key=lambda v: (hi[v] - lo[v], v))
        for value in sorted(range(lo[c], hi[c] + 1), key=lambda v: (abs(v - guide[c]), v)):
            lo2, hi2 = list(lo), list(hi)
            lo2[c] = hi2[c] = value
            if self.solvable(lo2, hi2, guide, budget, self.of[c]):
                return True
        return False


class OutOfBudget(Exception):
    pass


def recoverable(counts: dict[Key, int], table: Table) -> list[Key]:
    """Suppressed cells that take a single value over all tables consistent with the publication."""
    unknown, equations = constraints(table)
    system = System(len(unknown), equations)
    lo = [1] * len(unknown)
    hi = [UNBOUNDED] * len(unknown)  # a cell under no published total is free anyway
    for cols, rest in equations:  # bounded by its published line totals
        for c in cols:
            hi[c] = min(hi[c], rest - (len(cols) - 1))
    truth = [counts[k] for k in unknown]
    assert system.solvable(lo, hi, truth), "the true table must be consistent with what was published"
    # A second table is first looked for as a small change to the true one: d with every published
    # total unchanged, each hidden cell still >= 1, moving what is asked (cheap, and usually there).
    # Then over the values themselves, with a growing budget and exhaustively in the end, so that
    # "nothing found" is a proof.
    balanced = [(cols, 0) for cols, _ in equations]

    def nearby(moving: list[int], budget: int) -> bool:
        for radius in (1, 2):
            low = [max(-radius, 1 - t) for t in truth]
            high = [radius] * len(truth)
            for step in (1, -1):
                try:
                    if System(len(truth), [*balanced, (moving, step)]).solvable(low, high, [0] * len(truth),
                                                                                  [budget]):
                        return True
                except OutOfBudget:
                    pass
        return False

    def another(attempts: list[tuple[System, list[int], list[int]]]) -> bool:
        """Whether one of the attempts has a solution: all of them with a small search budget first,
        then more; exhaustive in the end, so False means none has one."""
        for budget in (300, 10_000, 300_000, None):
            undecided = []
            for system_, low, high in attempts:
                try:
                    if system_.solvable(low, high, truth, None if budget is None else [budget]):
                        return True
                except OutOfBudget:
                    undecided.append((system_, low, high))
            if not undecided:
                return False
            attempts = undecided
        return False  # pragma: no cover - the last round has no budget

    found = []
    for c in range(len(unknown)):
        if not system.of[c] or nearby([c], 3000):
            continue
        below_hi = list(hi)
        below_hi[c] = truth[c] - 1
        above_lo = list(lo)
        above_lo[c] = truth[c] + 1
        if not another([(system, lo, below_hi), (system, above_lo, hi)]):
            found.append(unknown[c])
    # Totals below min_cell are hidden too, and must not be recoverable either.
    index = {k: i for i, k in enumerate(unknown)}
    for total in (*table.totals, table.total):
        true = sum(v for k, v in counts.items() if matches(total.key, k))
        if not total.suppressed or not 0 < true < table.min_cell:
            continue
        cols = [index[k] for k in unknown if matches(total.key, k)]
        assert len(cols) == sum(1 for k in counts if counts[k] and matches(total.key, k))  # all hidden
        if nearby(cols, 3000):
            continue
        ceiling = sum(hi[c] for c in cols)
        others = sorted((r for r in range(len(cols), min(ceiling, true + 60) + 1) if r != true),
                        key=lambda r: abs(r - true))
        if not another([(System(len(unknown), [*equations, (cols, r)]), lo, hi) for r in others]):
            found.append(total.key)
    return found


def check_published_numbers(counts: dict[Key, int], table: Table) -> None:
    listed = {k for k, v in counts.items() if v}
    assert {e.key for e in table.cells} == listed
    for e in table.cells:
        assert e.suppressed == (e.count is None)
        if not e.suppressed:
            assert e.count == counts[e.key] >= table.min_cell
        if counts[e.key] < table.min_cell:
            assert e.suppressed
    for total in (*table.totals, table.total):
        true = sum(v for k, v in counts.items() if matches(total.key, k))
        assert total.suppressed == (total.count is None)
        if not total.suppressed:
            assert total.count == true
            assert true >= table.min_cell or true == 0
        elif 0 < true < table.min_cell:
            pass  # primary suppression of a small total
    # the kinds of totals: each value of each dimension, lines with 3+ dimensions, and the grand total
    n = len(table.dims)
    for total in table.totals:
        fixed = sum(1 for v in total.key if v is not ALL)
        assert fixed == 1 or (n >= 3 and fixed == n - 1)


@pytest.mark.slow
def test_random_tables_leak_no_suppressed_cell() -> None:
    rng = random.Random(20240601)
    suppressed = secondary = 0
    for _ in range(200):  # seeded: the same 200 tables every run; beyond a few hundred one table explodes
        counts, dims, min_cell = random_table(rng)
        table = protect(counts, dims, min_cell)
        check_published_numbers(counts, table)
        assert recoverable(counts, table) == [], (counts, dims, min_cell, table)
        suppressed += table.suppressed_cells
        secondary += sum(1 for e in table.cells if e.suppressed and counts[e.key] >= min_cell)
    assert suppressed and secondary  # the sample exercises both kinds of suppression


@pytest.mark.parametrize("seed", range(40))
def test_tables_with_many_ones(seed: int) -> None:
    """Lots of 1s and 2s: the ">= 1" bounds pin cells that plain linear algebra would call free."""
    rng = random.Random(seed)
    n = rng.randint(1, 3)
    dims = ["abc"[i] for i in range(n)]
    counts = {key: rng.choice([0, 1, 1, 1, 2, 2, 3, 12, 25]) for key in itertools.product(
        *[[f"{d}{v}" for v in range(rng.randint(2, 4))] for d in dims])}
    min_cell = rng.randint(3, 5)
    table = protect(counts, dims, min_cell)
    check_published_numbers({k: v for k, v in counts.items() if v}, table)
    assert recoverable(counts, table) == []


def test_the_checker_finds_leaks() -> None:
    """The checker itself: it must see through naive publications."""
    def naive(counts: dict[Key, int], dims: list[str], hidden: set[Key], hidden_totals: set[Key] = frozenset()
              ) -> Table:
        n = len(dims)
        cells = tuple(Entry(k, None if k in hidden else v, k in hidden) for k, v in sorted(counts.items()))
        kinds = {(i,) for i in range(n)} if n >= 2 else set()
        if n >= 3:
            kinds |= set(itertools.combinations(range(n), n - 1))
        keys = sorted({tuple(k[i] if i in kept else ALL for i in range(n)) for kept in kinds for k in counts},
                      key=str)
        totals = tuple(Entry(t, None if t in hidden_totals else sum(v for k, v in counts.items() if matches(t, k)),
                             t in hidden_totals) for t in keys)
        grand = Entry((ALL,) * n, sum(counts.values()), False)
        return Table(tuple(dims), 10, cells, totals, grand)

    # one hidden cell: total minus the others
    counts = {("a",): 2, ("b",): 10, ("c",): 12}
    assert recoverable(counts, naive(counts, ["d"], {("a",)})) == [("a",)]
    # two hidden cells worth 1 under a total: pinned by the ">= 1" bounds
    counts = {("a",): 1, ("b",): 1, ("c",): 12}
    assert recoverable(counts, naive(counts, ["d"], {("a",), ("b",)})) == [("a",), ("b",)]
    # a 2x2 block hidden in a 3x3 table is safe; a block whose rows are pinned is not
    counts = {(r, c): 20 for r in "xyz" for c in "pqr"}
    block = {("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")}
    assert recoverable(counts, naive(counts, ["r", "c"], block)) == []
    counts.update({("x", "p"): 1, ("x", "q"): 1})
    assert sorted(recoverable(counts, naive(counts, ["r", "c"], block))) == sorted(block)
    # three dimensions: a 2x2 square in one slice is given away by the lines across slices
    counts = {(a, b, c): 15 for a in "xy" for b in "pq" for c in "uv"}
    square = {("x", "p", "u"), ("x", "q", "u"), ("y", "p", "u"), ("y", "q", "u")}
    assert sorted(recoverable(counts, naive(counts, ["a", "b", "c"], square))) == sorted(square)
    cube = set(counts)
    assert recoverable(counts, naive(counts, ["a", "b", "c"], cube)) == []
    # every cell of a small row can move, but the row's total is the grand total minus the others
    counts = {("x", "p"): 2, ("x", "q"): 1, ("y", "p"): 20, ("y", "q"): 20, ("z", "p"): 20, ("z", "q"): 20}
    hidden = {("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")}
    assert recoverable(counts, naive(counts, ["r", "c"], hidden, {("x", ALL)})) == [("x", ALL)]
    assert recoverable(counts, naive(counts, ["r", "c"], hidden, {("x", ALL), ("y", ALL)})) == []


def test_known_leaks_are_closed() -> None:
    # a single small cell in a row: the row total would give it away
    table = protect({("x", "p"): 2, ("x", "q"): 40, ("y", "p"): 30, ("y", "q"): 50}, ["r", "c"], 5)
    assert [e.suppressed for e in table.cells] == [True, True, True, True]
    assert recoverable({("x", "p"): 2, ("x", "q"): 40, ("y", "p"): 30, ("y", "q"): 50}, table) == []
    # two suppressed cells worth 1 each under a published total: both pinned at 1
    counts = {("a",): 1, ("b",): 1, ("c",): 20}
    table = protect(counts, ["d"], 3)
    assert table.cells[2].suppressed and table.total.count == 22
    assert recoverable(counts, table) == []
    # all ones under a published total: only withholding the total helps
    counts = {(f"v{i}",): 1 for i in range(6)}
    table = protect(counts, ["d"], 3)
    assert table.total.suppressed and all(e.suppressed for e in table.cells)


def test_large_cells_are_all_published() -> None:
    rng = random.Random(7)
    for n in (1, 2, 3):
        counts = {key: rng.randint(10, 500) for key in itertools.product(*[range(4)] * n)}
        table = protect(counts, ["a", "b", "c"][:n], 10)
        assert not any(e.suppressed for e in (*table.cells, *table.totals, table.total))
        assert table.total.count == sum(counts.values())


def test_min_cell_below_three_is_refused() -> None:
    for bad in (0, 1, 2, -5):
        with pytest.raises(DisclosureError):
            protect({("a",): 5}, ["d"], bad)


def test_bad_tables_are_refused() -> None:
    with pytest.raises(DisclosureError):
        protect({("a", "b"): 5}, ["d"], 3)  # key length does not match the dimensions
    with pytest.raises(DisclosureError):
        protect({("a",): -1}, ["d"], 3)
    with pytest.raises(DisclosureError):
        protect({("a",): 5}, [], 3)


def test_empty_table_publishes_a_zero_total() -> None:
    table = protect({}, ["area", "gender"], 10)
    assert table.cells == () and table.total.count == 0 and not table.total.suppressed


def test_zero_cells_are_not_listed() -> None:
    table = protect({("a",): 0, ("b",): 15, ("c",): 12}, ["d"], 10)
    assert [e.key for e in table.cells] == [("b",), ("c",)]


def test_thousands_of_cells_take_a_bounded_search() -> None:
    """The box search stops soon after a box fits: it weighs a few boxes per cell, not every box there is
    (weighing them all is over ten per cell on this table)."""
    rng = random.Random(3)
    areas, nationalities, genders = 25, 40, 4
    counts: dict[Key, int] = {}
    for a in range(areas):
        for n in range(nationalities):
            for g in range(genders):
                mean = 40000 / (n + 1) ** 1.3 / areas / (3 if g == 3 else 1)
                value = max(0, int(rng.gauss(mean, mean / 3)))
                if value:
                    counts[(f"a{a}", f"n{n}", f"g{g}")] = value
    work = Work()
    table = protect(counts, ["area", "nationality", "gender"], 10, work)
    assert table.suppressed_cells > 0
    assert 0 < work.boxes <= 2 * len(counts), work  # bench/stats.py times it (well under 500 ms)
