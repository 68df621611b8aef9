"""Draw docs/img/throughput.png from the JSON that benchmarks/concurrency.py writes.

    .venv/bin/python -m benchmarks.concurrency --json concurrency.json
    .venv/bin/python -m scripts.plot_performance concurrency.json [--out docs/img/throughput.png]

Two panels, one-step and ten-step workflows: workflows per second against the number of
threads, for dbos_typed, the official dbos and the plain-psycopg floor. Needs matplotlib
(in the dev extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write the file only

import matplotlib.pyplot as plt  # after choosing the backend

SERIES = (
    ("dbos_typed", "dbos_typed", "tab:blue", "o"),
    ("dbos_typed_single", "dbos_typed, group commit off", "tab:cyan", "D"),
    ("dbos", "dbos 3.4.0", "tab:orange", "s"),
    ("floor", "floor: the same commits, plain psycopg", "tab:gray", "^"),
)


def plot(figures: dict[str, Any], out: Path, note: str) -> None:
    """Write the two-panel chart of `figures` (concurrency.py's JSON) to `out`."""
    threads: list[int] = figures["threads"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
    for ax, steps in zip(axes, ("1", "10"), strict=True):
        for key, label, color, marker in SERIES:
            if key not in figures:
                continue  # figures from a run before that contender existed
            ax.plot(threads, figures[key]["sweep"][steps], label=label, color=color, marker=marker)
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads, [str(t) for t in threads])
        ax.set_xlabel("threads")
        ax.set_ylabel("workflows per second")
        ax.set_title(f"{steps}-step workflows")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper left", fontsize="small")
    fig.suptitle(f"Throughput against concurrency, Postgres 15 ({note})", fontsize="medium")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("figures", type=Path, help="the JSON of benchmarks.concurrency --json")
    parser.add_argument("--out", type=Path, default=Path("docs/img/throughput.png"))
    parser.add_argument("--note", default="2 vCPUs shared by client and server, loaded")
    args = parser.parse_args()
    plot(json.loads(args.figures.read_text()), args.out, args.note)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
