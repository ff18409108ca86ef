"""The loss-curve PNG written at the end of a run (matplotlib, headless: the optional ``ganzoo-core[plots]``).

Without matplotlib the run skips the PNG and ``ganzoo report RUN_DIR`` draws the same curves in its page."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from ganzoo_core.checkpoints import atomic_path

PLOTS_HINT = "pip install 'ganzoo-core[plots]'"


def plotting_available() -> bool:
    """Whether matplotlib is installed (the ``plots`` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def save_loss_curve(history: Sequence[dict[str, float]], path: str | Path, title: str = "", *,
                    overwrite: bool = True) -> Path:
    """Plot every ``loss_*`` column of ``history`` (rows with a ``step``) against the step, one line each.

    Refuses a ``path`` that is not a regular file, and an existing one when ``overwrite`` is False."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    keys = sorted({k for row in history for k in row if k.startswith("loss_")})
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in keys:
        points = [(row["step"], row[key]) for row in history if key in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=key.removeprefix("loss_"), linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(title="phase")
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite, what="loss curve") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
