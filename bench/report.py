"""What a benchmark hands back (``Outcome``), and the table and RESULTS.md made of them.

A benchmark never invents a figure: a part that could not run carries
``unavailable="<reason>"`` and the table says "not available: <reason>".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.machine import CpuUse
from bench.measure import Series, Summary, ratio


@dataclasses.dataclass
class Line:
    """One measured figure, with the goal it is judged against (if any)."""

    what: str
    figure: str = ""
    goal: str = ""
    met: bool | None = None  # None: informative only, or not available
    unavailable: str | None = None

    @property
    def verdict(self) -> str:
        if self.unavailable:
            return f"not available: {self.unavailable}"
        if self.met is None:
            return ""
        return "met" if self.met else "MISSED"


@dataclasses.dataclass
class Outcome:
    number: int
    key: str
    title: str
    goal: str
    lines: list[Line] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    cpu: CpuUse | None = None

    def add(self, *lines: Line) -> None:
        self.lines.extend(lines)

    @property
    def verdict(self) -> str:
        judged = [line.met for line in self.lines if line.met is not None and not line.unavailable]
        missing = [line for line in self.lines if line.unavailable and line.goal]
        if missing and not judged:
            return f"not available: {missing[0].unavailable}"
        if not judged:
            return "no goal judged"
        verdict = "met" if all(judged) else "MISSED"
        if missing:
            verdict += f" (partly not available: {missing[0].unavailable})"
        return verdict


def fmt_ms(summary: Summary) -> str:
    return f"{summary.p50:.2f} / {summary.p99:.2f} ms"


def fmt_ratio(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}x"


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def compare_ms(a_name: str, a: Summary, b_name: str, b: Summary) -> str:
    """'B p50/p99 vs A p50/p99 (p50 ratio)' for two latency summaries."""
    return (
        f"{b_name} {fmt_ms(b)} vs {a_name} {fmt_ms(a)} (p50 {fmt_ratio(ratio(b.p50, a.p50))}, "
        f"p99 {fmt_ratio(ratio(b.p99, a.p99))})"
    )


def add_throughput_comparison(
    outcome: Outcome,
    level: int,
    ours: Series,
    theirs: Series,
    *,
    throughput_label: str,
    latency_label: str,
    goal_share: float,
    judged: bool,
    cpu: list[tuple[str, str]],
) -> None:
    """The lines of one concurrency level of an A/B throughput benchmark: rates and
    their ratio (judged against ``goal_share`` at the judged level, where errors fail
    it), latency percentiles, CPU per call (judged level only), and any errors."""
    share = ratio(ours.throughput, theirs.throughput)
    errors = ours.errors + theirs.errors
    outcome.add(
        Line(
            f"concurrency {level}: {throughput_label}",
            f"{ours.throughput:.0f} vs {theirs.throughput:.0f} ({fmt_ratio(share)})"
            + (f", {errors} errors" if errors else ""),
            goal=f">= {goal_share:.0%}" if judged else "",
            met=(share is not None and share >= goal_share and errors == 0) if judged else None,
        ),
        Line(
            f"concurrency {level}: {latency_label}",
            f"{fmt_ms(ours.summary_ms())} vs {fmt_ms(theirs.summary_ms())}",
        ),
    )
    if judged:
        outcome.add(*(Line(f"concurrency {level}: {label}", value) for label, value in cpu))
    for message in (*ours.error_messages, *theirs.error_messages):
        outcome.notes.append(f"Error (concurrency {level}): {message}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| # | Benchmark | Measure | Result | Goal | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        first = True
        for line in outcome.lines or [Line("", unavailable="nothing measured")]:
            rows.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        str(outcome.number) if first else "",
                        outcome.title if first else "",
                        line.what,
                        line.figure if not line.unavailable else "",
                        line.goal,
                        line.verdict,
                    )
                )
                + " |"
            )
            first = False
    return "\n".join(rows)


PROFILES = Path(__file__).resolve().parent / "PROFILES.md"


def results_markdown(
    outcomes: list[Outcome],
    machine: dict[str, str],
    settings: list[str],
    load: list[str],
    command: str,
    total_s: float,
) -> str:
    out = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` in {total_s:.0f} s. Regenerate with `python -m bench` "
        "(about 5 minutes on 2 cores; `--quick` for a smoke run, `--only NAME` for one benchmark).",
        "Every figure is a ratio or a percentile pair measured in the same run, the two sides",
        "interleaved round by round (A B A B ...), so load from elsewhere hits both sides.",
        "",
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
        "## Load on the machine during the run",
        "",
        *load,
        "",
        "## Settings",
        "",
        *(f"- {line}" for line in settings),
        "",
        "## Results",
        "",
        table(outcomes),
        "",
        "## Each benchmark",
        "",
    ]
    for outcome in outcomes:
        out += [f"### {outcome.number}. {outcome.title}", "", f"Goal: {outcome.goal}", ""]
        out.append(f"Verdict: **{outcome.verdict}**")
        out.append("")
        for line in outcome.lines:
            figure = f"not available: {line.unavailable}" if line.unavailable else line.figure
            goal = f" (goal: {line.goal}: {line.verdict})" if line.goal else ""
            out.append(f"- {line.what}: {figure}{goal}")
        if outcome.cpu is not None:
            out.append(
                f"- CPU meanwhile: benchmark processes {outcome.cpu.ours_cores:.2f} cores, "
                f"others {outcome.cpu.foreign_cores:.2f} cores, over {outcome.cpu.wall_s:.0f} s"
            )
        out += ["", *outcome.notes, ""]
    if PROFILES.exists():
        # Hand-written from py-spy profiles (issue 17): what limits each goal still missed.
        out += [PROFILES.read_text().strip(), ""]
    return "\n".join(out).rstrip() + "\n"
