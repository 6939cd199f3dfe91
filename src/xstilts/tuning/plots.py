"""The study's plots as PNG files (matplotlib, Agg backend: no display needed).

Optimization history, parameter importances (only with at least 2 completed
trials: fewer cannot rank anything) and the dev score per evaluation step of
pruned against completed trials (what the pruner saw).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def write_plots(study, out_dir: str | Path) -> list[Path]:
    """Write the plots that the study's trials allow into ``out_dir``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    out, paths = Path(out_dir), []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plots = [("optimization_history.png", ovm.plot_optimization_history)]
        if len(complete) >= 2:
            plots.append(("param_importances.png", ovm.plot_param_importances))
        for name, plot in plots:
            try:
                ax = plot(study)
                ax.figure.savefig(out / name, dpi=100, bbox_inches="tight")
                paths.append(out / name)
            except Exception as exc:  # noqa: BLE001 - a plot is a report, never a reason to fail the study
                log.warning("plot %s skipped: %s", name, exc)
            finally:
                plt.close("all")
    paths.append(_intermediate_values(study, out / "intermediate_values.png"))
    return paths


def _intermediate_values(study, path: Path) -> Path:
    """Dev score by step: completed trials solid, pruned ones dashed red (where they stopped)."""
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(7, 4))
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        steps = sorted(t.intermediate_values)
        pruned = t.state == TrialState.PRUNED
        ax.plot(steps, [t.intermediate_values[s] for s in steps], "--" if pruned else "-",
                color="tab:red" if pruned else "tab:blue", marker="o", markersize=3, alpha=0.8,
                label=f"trial {t.number} ({'pruned' if pruned else 'complete'})")
    ax.set_xlabel("training step")
    ax.set_ylabel("English dev score")
    ax.set_title(f"{study.study_name}: intermediate values")
    if ax.lines:
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
