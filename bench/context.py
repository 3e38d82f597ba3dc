"""What every scenario gets: sizes, the Temporal client, the product stacks, earlier exports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from bench.common import Layout, ProductStack
from bench.product import ExportRun, terminate_running


@dataclass(frozen=True)
class Sizes:
    s1_docs: int
    """Scenario 1 on mongo-java-server (and the collection scenarios 3, 4 and 6 read)."""
    s1_ferret_docs: int
    s1_reps: int
    s1_ferret_reps: int
    s2_docs: int
    s2_streamable_docs: int
    s2_reps: int
    s3_small_rows: int
    s3_large_rows: int
    s3_ferret_rows: int
    s3_reps: int
    s4_rate: float
    """Requests per second, per endpoint."""
    s4_requests: int
    """Requests per endpoint per phase."""
    s4_reps: int
    s5_rows: int
    s5_reps: int
    s6_reps: int


FULL = Sizes(
    s1_docs=200_000,
    s1_ferret_docs=20_000,
    s1_reps=5,
    s1_ferret_reps=3,
    s2_docs=100_000,
    s2_streamable_docs=20_000,
    s2_reps=3,
    s3_small_rows=50_000,
    s3_large_rows=500_000,
    s3_ferret_rows=30_000,
    s3_reps=2,
    s4_rate=20.0,
    s4_requests=600,
    s4_reps=2,
    s5_rows=50_000,
    s5_reps=5,
    s6_reps=3,
)

QUICK = Sizes(
    s1_docs=20_000,
    s1_ferret_docs=5_000,
    s1_reps=1,
    s1_ferret_reps=1,
    s2_docs=10_000,
    s2_streamable_docs=5_000,
    s2_reps=1,
    s3_small_rows=5_000,
    s3_large_rows=50_000,
    s3_ferret_rows=5_000,
    s3_reps=1,
    s4_rate=20.0,
    s4_requests=200,
    s4_reps=1,
    s5_rows=5_000,
    s5_reps=2,
    s6_reps=1,
)


@dataclass
class BenchContext:
    sizes: Sizes
    quick: bool
    stamp: str
    results_dir: Path
    temporal: Client
    stacks: dict[str, ProductStack] = field(default_factory=dict)
    exports: list[ExportRun] = field(default_factory=list)
    """Every export the scenarios measured (scenario 6 reads their histories)."""

    def stack(
        self, engine: str, layout: Layout = "split", csv_engine: str = "python"
    ) -> ProductStack:
        """The product (API and workers, in `layout`, encoding CSV with `csv_engine`) on
        `engine`, started on first use."""
        key = engine if layout == "split" else f"{engine}/{layout}"
        if csv_engine != "python":
            key += f"/{csv_engine}"
        if key not in self.stacks:
            label = "mjs" if engine == "mongo-java-server" else "ferret"
            if layout != "split":
                label += f"-{layout}"
            env = {"CSV_ENGINE": csv_engine}  # explicit: the product's default is `arrow`
            if csv_engine != "python":
                label += f"-{csv_engine}"
            self.stacks[key] = ProductStack(engine, label, layout, extra_env=env).start()
        return self.stacks[key]

    def plot_path(self, name: str) -> Path:
        return self.results_dir / f"{self.stamp}-{name}.png"

    async def aclose(self) -> None:
        """Terminate what a failed scenario left running, then stop the stacks."""
        for stack in self.stacks.values():
            await terminate_running(self.temporal, stack.task_queue)
            stack.stop()
        self.stacks.clear()
