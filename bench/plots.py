"""PNG plots of the scenarios' measurements (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from bench.stats import median

COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]


def _save(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _bars(ax: Any, groups: list[str], series: dict[str, list[list[float]]]) -> None:
    """Grouped bars at the median, one dot per repetition."""
    width = 0.8 / max(1, len(series))
    for index, (label, per_group) in enumerate(series.items()):
        for g, values in enumerate(per_group):
            x = g + (index - (len(series) - 1) / 2) * width
            ax.bar(
                x,
                median(values) if values else 0,
                width,
                color=COLORS[index % len(COLORS)],
                label=label if g == 0 else None,
            )
            ax.scatter([x] * len(values), values, color="black", s=8, zorder=3)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)


def s1(path: Path, measured: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    engines = list(measured)
    kinds = {
        "export (API → S3)": "export",
        "same reads + CSV encoding": "reads_encode",
        "one unchunked read": "single",
    }
    series: dict[str, list[list[float]]] = {}
    for label, key in kinds.items():
        series[label] = []
        for engine in engines:
            s = measured[engine]["seconds"]
            series[label].append([v / r for v, r in zip(s[key], s["reads"], strict=True)])
    groups = [f"{e}\n{measured[e]['rows']:,} rows" for e in engines]
    _bars(ax, groups, series)
    ax.axhline(1.0, color="grey", linewidth=1, linestyle=":")
    ax.axhline(1.3, color="red", linewidth=1, linestyle="--", label="target ≤ 1.3×")
    ax.set_ylabel("wall time ÷ the same reads with PyMongo")
    ax.set_title("1. End-to-end: time relative to the reads the export issues")
    ax.legend(fontsize=8)
    return _save(fig, path)


def s2(path: Path, measured: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    cases = list(measured["cases"])
    series: dict[str, list[list[float]]] = {
        "seed design (a pipeline run per 1,000 rows)": [
            measured["cases"][c]["seconds"]["seed"] for c in cases
        ],
        "product (API → S3)": [measured["cases"][c]["seconds"]["product"] for c in cases],
    }
    _bars(ax, [measured["cases"][c]["label"] for c in cases], series)
    ax.set_yscale("log")
    ax.set_ylabel("wall time (s, log scale)")
    ax.set_title("2. Against the seed's design")
    ax.legend(fontsize=8)
    return _save(fig, path)


def s3(path: Path, measured: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for index, (label, timeline) in enumerate(measured["timelines"].items()):
        xs = [t for t, _ in timeline]
        ys = [rss / 1e6 for _, rss in timeline]
        ax.plot(xs, ys, color=COLORS[index % len(COLORS)], label=label)
    ax.axhline(300, color="red", linewidth=1, linestyle="--", label="300 MB bound")
    ax.set_xlabel("seconds since the export was requested")
    ax.set_ylabel("worker RSS (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("3. Worker memory while exporting")
    ax.legend(fontsize=8)
    return _save(fig, path)


def s4(path: Path, measured: dict[str, Any]) -> str:
    titles = {
        "split": "new layout: workflow and activity processes",
        "single": "old layout: one worker process",
        "pool": "pool layout: workflow process + activity process with a pool",
        "sync": "export inside the request handler",
    }
    apps = [app for app in titles if app in measured]
    fig, axes = plt.subplots(1, len(apps), figsize=(5 * len(apps), 4.8), sharey=True)
    for ax, app in zip(axes, apps, strict=True):
        phases = measured[app]
        labels, data = [], []
        for phase in ("idle", "load"):
            for endpoint, samples in phases[phase]["samples"].items():
                short = endpoint.replace(" (old status path)", "")
                labels.append(f"{short}\n{phase}")
                data.append([s * 1000 for s in samples])
        ax.boxplot(data, whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, fontsize=6)
        ax.set_yscale("log")
        ax.set_title(titles[app], fontsize=9)
    axes[0].set_ylabel("latency (ms, log); whiskers p1–p99")
    fig.suptitle("4. Responsiveness: idle vs three large exports running")
    return _save(fig, path)


def s5(path: Path, measured: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    kinds = measured["rows_per_second"]
    _bars(ax, [""], {label: [[v / 1000 for v in values]] for label, values in kinds.items()})
    ax.set_ylabel("thousand rows per second")
    ax.set_title("5. CSV encoding throughput (same rows, same process, interleaved)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def s6(path: Path, measured: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    exports = measured["exports"]
    names = sorted({name for e in exports for name in e["activities"]})
    bottoms = [0.0] * len(exports)
    for index, name in enumerate(names):
        values = [e["activities"].get(name, 0.0) for e in exports]
        ax.bar(range(len(exports)), values, bottom=bottoms, color=COLORS[index % 6], label=name)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    rest = [e["workflow_seconds"] - b for e, b in zip(exports, bottoms, strict=True)]
    ax.bar(range(len(exports)), rest, bottom=bottoms, color="lightgrey", label="between activities")
    ax.set_xticks(range(len(exports)))
    ax.set_xticklabels([f"{e['label']}\n{e['parts']} parts" for e in exports], fontsize=7)
    ax.set_ylabel("seconds from workflow start to close")
    ax.set_title("6. Where an export's workflow time goes")
    ax.legend(fontsize=7)
    return _save(fig, path)
