"""``xstilts grid`` and ``xstilts analyze``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from xstilts.errors import XstiltsError
from xstilts.runtime.cpu import THREADS_HELP
from xstilts.runtime.device import DEVICE_HELP


@click.command("grid")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Grid YAML (default: the embedded offline grid, configs/default.yaml).")
@click.option("--output-dir", default=None, help="Where results, evaluations and the report go "
              "(default: the config's output_dir).")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
@click.option("--device", default=None, help=DEVICE_HELP + " Default: the config's device (auto).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--executor", type=click.Choice(["inprocess", "ray"]), default="inprocess", show_default=True,
              help="Where jobs run: in this process, or as Ray tasks on a cluster (pip install 'xstilts[scale]'; "
                   "see docs/scale-out.md).")
@click.option("--address", default=None, help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
              "(default: RAY_ADDRESS, else a Ray started on this machine).")
@click.option("--max-retries", type=int, default=3, show_default=True,
              help="Ray: retries of a job whose worker died, then the grid fails.")
@click.option("--gpus-per-job", type=float, default=0.0, show_default=True,
              help="Ray: GPUs each training job asks for (e.g. 1, or 0.5 to share one).")
def grid_command(config_file, output_dir, threads, device, no_progress, executor, address, max_retries,
                 gpus_per_job):
    """Run the comparison: conditions (none / en / multi [/ en+mlm]) x seeds x targets.

    Intermediate models are trained once per (condition, seed) and reused by every
    target; finished models (registry) and evaluations (result files) are skipped,
    so a rerun after a crash or a config extension does only what is missing.
    Ends with a results table (CSV, Parquet) and report.md / report.html, all
    logged to the grid's MLflow run.
    """
    from xstilts.grid.config import GridConfig
    from xstilts.grid.runner import run_grid
    from xstilts.paths import repo_root

    path = config_file or str(repo_root() / "configs" / "default.yaml")
    cfg = GridConfig.from_file(path)
    if output_dir:
        cfg.output_dir = output_dir
    if threads is not None:
        cfg.threads = threads
    if device is not None:
        cfg.device = device
    make = None
    if executor == "inprocess" and os.environ.get("MLFLOW_TRACKING_URI"):
        from xstilts.grid.preflight import check_tracking_uri

        check_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # one line now, not minutes of HTTP retries
    if executor == "ray":
        from xstilts.grid.ray_executor import RaySettings, grid_executor, prepare

        cfg.validate()
        if cfg.tuning is not None and cfg.tuning.storage is None:  # a worker's working directory is not ours
            cfg.tuning.storage = os.environ.get("XSTILTS_OPTUNA_STORAGE") or cfg.tuning.storage_url()
        settings = RaySettings(address=address, max_retries=max_retries, cpus_per_job=max(1, cfg.threads),
                               gpus_per_job=gpus_per_job)
        resources = prepare(settings)
        click.echo(f"Ray cluster: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs", err=True)
        make = grid_executor(settings, threads=max(1, cfg.threads))
    result = run_grid(cfg, progress=not no_progress, executor=make)
    click.echo(f"grid {cfg.name}: {result.trained} models trained, {result.reused} reused, "
               f"{result.evaluated} evaluations run, {result.eval_reused} reused; {result.rows} result rows")
    click.echo(f"results: {result.table_csv} and {result.table_parquet}")
    click.echo(f"wall time: {result.seconds / 60:.1f} min (MLflow run {result.run_id})")
    click.echo(f"where the time went (also {cfg.output_dir}/timing.md and the run's timing/ artifacts):\n"
               f"{result.timing_table}")
    click.echo(f"browse: `mlflow ui` here, then {result.ui_url}")
    if result.report is not None:
        click.echo(f"report: {result.report}")
    else:
        click.echo("report: not written (needs conditions en and multi, or several intermediate settings, "
                   "and at least 2 seeds)")


@click.command("analyze")
@click.option("--results", "results_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="A grid's results table (results.csv or results.parquet).")
@click.option("--out", "out_dir", default="report", show_default=True, help="Output folder for the report.")
@click.option("--treatment", default="multi", show_default=True)
@click.option("--control", default="en", show_default=True)
@click.option("--tau", type=float, default=0.2, show_default=True, help="ASO threshold on epsilon_min.")
@click.option("--title", default="xstilts analysis", show_default=True)
@click.option("--log-mlflow/--no-log-mlflow", default=True, help="Log the report to an MLflow run.")
@click.option("--encoder", default=None, help="The encoder the models were trained from (default, a Hub id or a "
              "directory): the report names it and its pretraining objective. Unnamed when omitted.")
def analyze_command(results_file, out_dir, treatment, control, tau, title, log_mlflow, encoder):
    """Statistics and report from a results table: per-language mean, seed spread and
    bootstrap CIs, dispersion across languages, Brown-Forsythe and std-ratio CIs for
    variances, Almost Stochastic Order for means, a mixed-effects model, plots."""
    import pandas as pd

    from xstilts.analysis.report import write_report

    table = pd.read_parquet(results_file) if results_file.endswith(".parquet") else pd.read_csv(results_file)
    if table.empty:
        raise XstiltsError(f"{results_file}: the results table is empty")
    from xstilts.encoders.describe import describe_encoder

    info = describe_encoder(encoder) if encoder is not None else None
    path = write_report(table, out_dir, title=title, treatment=treatment, control=control, tau=tau, encoder=info)
    if log_mlflow:
        from xstilts.tracking.store import RunStore

        store = RunStore.open()
        with store.job_run("analyze", {"kind": "analysis"}, adopt_launch=True) as run:
            run.log_params({"results": results_file, "treatment": treatment, "control": control, "tau": tau})
            run.log_artifacts(Path(path).parent, "report")
        click.echo(f"logged to MLflow run {run.run_id}", err=True)
    click.echo(f"report: {path}")



