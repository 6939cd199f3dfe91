"""``xstilts serve``: exported models over HTTP (ONNX Runtime, one process, several models)."""
from __future__ import annotations

import click


def load_served(refs: list[str], *, intra_op_threads: int = 0, inter_op_threads: int = 0, store=None) -> list:
    """:class:`~xstilts.export.runtime.ServedModel` of each ``models:/xstilts-serve-...`` (or bundle directory)."""
    from xstilts.errors import XstiltsError
    from xstilts.export.runtime import ServedModel, SessionSettings

    settings = SessionSettings(intra_op_threads, inter_op_threads)
    out = []
    for ref in refs:
        name = version = ""
        if ref.startswith("models:/"):
            from xstilts.tracking.store import RunStore

            store = store or RunStore.open()
            registered = store.resolve_registered(ref)
            name, version = registered.name, registered.version
            bundle = store.fetch_export_bundle(ref)
        else:
            bundle = ref
        out.append(ServedModel(bundle, settings=settings, name=name, version=version))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise XstiltsError(f"two --model options name the same model ({names}); serve one version per name")
    return out


@click.command("serve")
@click.option("--model", "models", multiple=True, required=True,
              help="models:/xstilts-serve-TASK@ALIAS or /VERSION (or an exported bundle directory); repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", type=int, default=5001, show_default=True)
@click.option("--max-batch-rows", type=int, default=32, show_default=True,
              help="Rows per ONNX Runtime call, gathered across concurrent requests.")
@click.option("--max-wait-ms", type=float, default=5.0, show_default=True,
              help="How long a batch waits for more requests.")
@click.option("--intra-op-threads", type=int, default=0, show_default=True, help="ONNX Runtime threads (0: all cores).")
@click.option("--inter-op-threads", type=int, default=0, show_default=True)
@click.option("--max-rows", type=int, default=64, show_default=True, help="Rows per request (413 beyond).")
@click.option("--max-text-chars", type=int, default=5000, show_default=True, help="Characters per field (422 beyond).")
@click.option("--max-body-bytes", type=int, default=1_000_000, show_default=True, help="Request body (413 beyond).")
def serve_command(models, host, port, max_batch_rows, max_wait_ms, intra_op_threads, inter_op_threads, max_rows,
                  max_text_chars, max_body_bytes):
    """Serve exported models: MLflow's /invocations, task-shaped endpoints, /docs (uvicorn)."""
    import uvicorn

    from xstilts.serving.app import ServeSettings, create_app
    from xstilts.serving.limits import Limits

    settings = ServeSettings(Limits(max_body_bytes, max_rows, max_text_chars), max_batch_rows, max_wait_ms,
                             intra_op_threads, inter_op_threads)
    served = load_served(list(models), intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
    names = ", ".join(f"{m.name}/{m.version or '-'}" for m in served)
    click.echo(f"serving {names} on http://{host}:{port} (docs: /docs)", err=True)
    uvicorn.run(create_app(served, settings), host=host, port=port, log_level="warning")
