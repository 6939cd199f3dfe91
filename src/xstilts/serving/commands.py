"""``xstilts serve``: exported models over HTTP (ONNX Runtime, one process, several models)."""
from __future__ import annotations

import gc
import os

import click

from xstilts.export.runtime import PAD_TOKENS


def load_served(refs: list[str], *, intra_op_threads: int = 0, inter_op_threads: int = 0, spinning: bool = False,
                store=None) -> list:
    """:class:`~xstilts.export.runtime.ServedModel` of each ``models:/xstilts-serve-...`` (or bundle directory)."""
    from xstilts.errors import XstiltsError
    from xstilts.export.runtime import ServedModel, SessionSettings

    settings = SessionSettings(intra_op_threads, inter_op_threads, spinning)
    out = []
    for ref in refs:
        name = version = ""
        if ref.startswith("models:/"):
            from xstilts.tracking.store import RunStore

            store = store or RunStore.open()
            registered = store.resolve_registered(ref)
            name, version = registered.name, registered.version
            with store.fetched(ref, bundle=True) as bundle:  # loaded whole: the download goes after
                out.append(ServedModel(bundle, settings=settings, name=name, version=version))
        else:
            out.append(ServedModel(ref, settings=settings, name=name, version=version))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise XstiltsError(f"two --model options name the same model ({names}); serve one version per name")
    return out


def parallelism(workers: int, intra_op_threads: int, cores: int | None = None) -> tuple[int, int]:
    """``(workers, ONNX Runtime threads per call)``, 0 meaning automatic: one worker per core (at most 4)
    and the cores shared out among them (the cores: ``OMP_NUM_THREADS`` when set, else those this
    process may run on).

    Measured on a 2-core AMX Xeon with the earlier blockwise int8 graph (2026-12-05, one-seed
    default-grid PAN-X model, one real sentence per request at concurrency 8): 2 workers x 1 thread
    served 170-177 requests/s, p99 91 ms; 1 worker x 2 threads 122-145 requests/s, p99 158-170 ms:
    per-call threads pay a handoff on every operator of a short sentence, separate calls do not.
    With the row-wise graph 3, 4 and 8 workers were no better than 2 (scratch client)."""
    from xstilts.runtime.cpu import cpu_threads

    cores = cores or cpu_threads()
    workers = workers or min(cores, 4)
    return workers, intra_op_threads or max(1, cores // workers)


@click.command("serve")
@click.option("--model", "models", multiple=True, required=True,
              help="models:/xstilts-serve-TASK@ALIAS or /VERSION (or an exported bundle directory); repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", type=int, default=5001, show_default=True)
@click.option("--max-batch-rows", type=int, default=32, show_default=True,
              help="Rows per ONNX Runtime call, gathered across concurrent requests (the oldest waiting "
                   f"request leads; only requests whose padded lengths stay within {PAD_TOKENS} tokens "
                   "of each other join it).")
@click.option("--max-wait-ms", type=float, default=0.0, show_default=True,
              help="How long a batch waits for more requests (0: a free worker takes what is waiting at once; "
                   "batches form while the workers are busy).")
@click.option("--workers", type=int, default=0, show_default=True,
              help="Batches of one model run at once, each in its own thread (0: one per core, at most 4).")
@click.option("--intra-op-threads", type=int, default=0, show_default=True,
              help="ONNX Runtime threads per call (0: the cores shared out among the workers).")
@click.option("--inter-op-threads", type=int, default=0, show_default=True)
@click.option("--spinning/--no-spinning", default=False, show_default=True,
              help="Let idle ONNX Runtime threads busy-wait (faster handoff, but they take CPU from the HTTP loop).")
@click.option("--max-rows", type=int, default=64, show_default=True, help="Rows per request (413 beyond).")
@click.option("--max-text-chars", type=int, default=5000, show_default=True, help="Characters per field (422 beyond).")
@click.option("--max-body-bytes", type=int, default=1_000_000, show_default=True, help="Request body (413 beyond).")
def serve_command(models, host, port, max_batch_rows, max_wait_ms, workers, intra_op_threads, inter_op_threads,
                  spinning, max_rows, max_text_chars, max_body_bytes):
    """Serve exported models: MLflow's /invocations, task-shaped endpoints, /docs (uvicorn)."""
    import uvicorn

    from xstilts.serving.app import ServeSettings, create_app
    from xstilts.serving.limits import Limits

    # The workers are the server's parallelism: the Rust tokenizer's own thread pool, on the same
    # cores, only competes with them for a request of a few words (unless the user set it).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    workers, intra_op_threads = parallelism(workers, intra_op_threads)
    settings = ServeSettings(Limits(max_body_bytes, max_rows, max_text_chars), max_batch_rows, max_wait_ms,
                             intra_op_threads, inter_op_threads, workers, spinning)
    served = load_served(list(models), intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads,
                         spinning=spinning)
    names = ", ".join(f"{m.name}/{m.version or '-'}" for m in served)
    click.echo(f"serving {names} on http://{host}:{port} (docs: /docs)", err=True)
    app = create_app(served, settings)
    # Everything loaded so far (torch, transformers, the tokenizers, the app) lives as long as the
    # server: frozen out of the cyclic GC, whose full collections would otherwise scan it all and
    # stall a request now and then.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning")
