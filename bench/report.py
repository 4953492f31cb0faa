"""What one benchmark case measured, and the table and verdicts printed from it."""

from __future__ import annotations

from dataclasses import dataclass

from bench.reference import Agreement

GOAL_RATIO = 2.0
GOAL_DATABASE, GOAL_ACCOUNTS = "postgres", 1_000_000
# "Flat": the run's peak at the largest size at most 10% above the smallest.
FLAT_MEMORY_TOLERANCE = 1.10
DATABASE_ORDER = ("postgres", "sqlite")


@dataclass(frozen=True)
class ProductRun:
    seconds: float
    status: str
    error: str | None
    counts: dict[str, int]
    rss_before_kib: int
    peak_rss_kib: int

    @property
    def growth_kib(self) -> int:
        return max(self.peak_rss_kib - self.rss_before_kib, 0)


@dataclass(frozen=True)
class CaseResult:
    database: str
    accounts: int
    load_seconds: float
    product: ProductRun
    join_seconds: float
    agreement: Agreement

    @property
    def label(self) -> str:
        return f"{self.database} at {self.accounts:,} accounts"

    @property
    def ratio(self) -> float:
        return self.product.seconds / self.join_seconds

    @property
    def ok(self) -> bool:
        return self.product.status == "succeeded" and self.agreement.agrees


COLUMNS = (
    ("database", 9),
    ("accounts", 10),
    ("load", 8),
    ("product run", 12),
    ("hand join", 10),
    ("ratio", 7),
    ("run peak RSS", 13),
    ("run growth", 11),
    ("assigned", 10),
    ("conflict", 9),
    ("gap", 7),
    ("agree", 6),
)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def _cells(result: CaseResult) -> list[str]:
    product, counts = result.product, result.product.counts
    return [
        result.database,
        f"{result.accounts:,}",
        f"{result.load_seconds:.1f} s",
        f"{product.seconds:.1f} s",
        f"{result.join_seconds:.1f} s",
        f"{result.ratio:.2f}x",
        _mib(product.peak_rss_kib),
        f"+{_mib(product.growth_kib)}",
        f"{counts.get('assigned', 0):,}",
        f"{counts.get('conflict', 0):,}",
        f"{counts.get('gap', 0):,}",
        "yes" if result.ok else "NO",
    ]


def _line(cells: list[str]) -> str:
    widths = [width for _, width in COLUMNS]
    return " ".join(
        cell.rjust(width) for cell, width in zip(cells, widths, strict=True)
    )


def print_table(results: list[CaseResult]) -> None:
    print(_line([title for title, _ in COLUMNS]))
    for result in results:
        print(_line(_cells(result)))


def problems(result: CaseResult) -> list[str]:
    """Why a case failed, in sentences; empty when it did not."""
    found = []
    if result.product.status != "succeeded":
        found.append(f"{result.label}: the run failed: {result.product.error}")
    agreement = result.agreement
    if not agreement.agrees:
        found.append(
            f"{result.label}: the product and the join disagree: "
            f"{agreement.only_in_reference:,} rows only in the join, "
            f"{agreement.only_in_product:,} only in the product, "
            f"{agreement.territories_with_other_counts:,} territories counted "
            "differently."
        )
    return found


def speed_verdict(results: list[CaseResult]) -> str:
    for result in results:
        if (result.database, result.accounts) == (GOAL_DATABASE, GOAL_ACCOUNTS):
            verdict = "met" if result.ratio <= GOAL_RATIO else "NOT met"
            return f"{verdict} ({result.ratio:.2f}x)"
    return f"not measured (needs {GOAL_DATABASE} at {GOAL_ACCOUNTS:,} accounts)"


def _memory_verdict(runs: list[CaseResult]) -> str:
    small, large = runs[0], runs[-1]
    limit = small.product.peak_rss_kib * FLAT_MEMORY_TOLERANCE
    verdict = "met" if large.product.peak_rss_kib <= limit else "NOT met"
    return (
        f"{small.database} {verdict} ({_mib(small.product.peak_rss_kib)} at "
        f"{small.accounts:,}, {_mib(large.product.peak_rss_kib)} at "
        f"{large.accounts:,})"
    )


def memory_verdict(results: list[CaseResult]) -> str:
    verdicts = []
    for database in DATABASE_ORDER:
        runs = sorted(
            (result for result in results if result.database == database),
            key=lambda result: result.accounts,
        )
        if len(runs) >= 2:
            verdicts.append(_memory_verdict(runs))
    return "; ".join(verdicts) or "not measured (needs two sizes on one database)"


def print_report(results: list[CaseResult], heading: str) -> None:
    print(f"\n{heading}\n")
    print_table(results)
    print()
    for result in results:
        for problem in problems(result):
            print(problem)
    print(
        f"Goal: product run within {GOAL_RATIO:g}x of the hand-written join at "
        f"{GOAL_ACCOUNTS:,} accounts on PostGIS: {speed_verdict(results)}"
    )
    print(
        f"Goal: run memory flat as accounts grow (peak at most "
        f"{FLAT_MEMORY_TOLERANCE - 1:.0%} higher): {memory_verdict(results)}"
    )
