"""docs/latency.png: ExecuteCommandSync percentiles vs concurrency, same vs cross replica (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PERCENTILES = (("p50_ms", "p50", "tab:blue"), ("p90_ms", "p90", "tab:orange"), ("p99_ms", "p99", "tab:red"))
MODES = (("same", "-", "o"), ("cross", "--", "s"))


def latency_png(result: dict[str, Any], path: Path) -> str:
    """Write the plot; return "" or why it was not written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (add it to the dev extra or pip install matplotlib)"
    steps = result["steps"]
    fig, (ax, tput) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for mode, style, marker in MODES:
        rows = sorted((r for r in steps if r["mode"] == mode), key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in rows]
        for key, label, color in PERCENTILES:
            ax.plot(xs, [r[key] for r in rows], style, marker=marker, color=color, label=f"{label} {mode}")
        tput.plot(xs, [r["acked_per_s"] for r in rows], style, marker=marker, color="tab:green", label=mode)
    params = result["params"]
    left = min(r["concurrency"] for r in steps)  # where the reference lines are labelled
    for value, label in ((1.5, "target p50 cross 1.5 ms"), (5.0, "target p99 cross 5 ms")):
        ax.axhline(value, color="grey", linestyle=":", linewidth=1)
        ax.annotate(label, (left, value), fontsize=7, color="grey", textcoords="offset points", xytext=(2, 2))
    unary = result.get("floors", {}).get("grpc_unary", {}).get("p50_ms")
    if unary:  # the machine's own cost of one unary gRPC call, measured in the same run
        ax.axhline(unary, color="black", linestyle="-.", linewidth=1)
        ax.annotate(f"bare grpc.aio unary call p50 {unary:.2f} ms (this run)", (left, unary), fontsize=7,
                    textcoords="offset points", xytext=(2, -10))
    tput.axhline(3000, color="grey", linestyle=":", linewidth=1)
    tput.annotate("target 3,000/s", (left, 3000), fontsize=7, color="grey", textcoords="offset points",
                  xytext=(2, -10))
    database = params.get("database", "sqlite")
    ax.set(xscale="log", yscale="log", xlabel="commands in flight", ylabel="ms",
           title=f"ExecuteCommandSync latency ({params['replicas']} replicas, {result['connected']} bots, {database})")
    tput.set(xscale="log", xlabel="commands in flight", ylabel="acked commands/s", title="throughput (cluster)")
    for axis in (ax, tput):
        axis.set_xticks(sorted({r["concurrency"] for r in steps}))
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.grid(True, which="both", alpha=0.3)
    tput.set_ylim(bottom=0)
    ax.legend(fontsize=8, ncol=2)
    tput.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""
