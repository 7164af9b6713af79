"""`finmed index build|query|list`: index JSONL records into the vector store and search them from the shell."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from core.console import console
from core.retrieval.schema import DEFAULT_TENANT
from core.settings import get_settings

app = typer.Typer(help="Vector retrieval: build collections from JSONL and query them.", no_args_is_help=True)


@app.command()
def build(
    collection: str = typer.Option(..., "--collection", "-c", help="Collection name (lower case, digits, '_')."),
    input_path: Path = typer.Option(..., "--in", help="JSONL file: one object per line with 'text', optional 'id'."),
    tenant: str = typer.Option(DEFAULT_TENANT, "--tenant", "-t", help="Tenant (business unit or hospital)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Records embedded and written per batch."),
) -> None:
    """Embed and upsert every record (validated first); re-running skips what is already stored identically."""
    from core.retrieval.embeddings import load_embedder
    from core.retrieval.indexing import build_index, read_records
    from core.retrieval.store import open_store

    settings = get_settings()
    total = len(read_records(input_path))
    store = open_store(settings)
    try:
        with console.status("loading embedding model"):
            embedder = load_embedder(settings)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"indexing {input_path.name}", total=total)
            report = build_index(
                store,
                embedder,
                collection=collection,
                path=input_path,
                tenant=tenant,
                batch_size=batch_size,
                on_batch=lambda n: progress.advance(task, n),
            )
    finally:
        store.close()
    console.print(
        f"{collection} (tenant {tenant}): {report.records} records, {report.written} written, "
        f"{report.skipped} unchanged; {report.count} objects ({store.backend}, {embedder.backend} embeddings)"
    )


@app.command()
def query(
    text: str = typer.Argument(..., help="What to look for."),
    collection: str = typer.Option(..., "--collection", "-c", help="Collection to search."),
    tenant: str = typer.Option(DEFAULT_TENANT, "--tenant", "-t", help="Tenant whose objects are searched."),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="FIELD=VALUE, FIELD>=VALUE (also > < <= !=) or 'FIELD in A,B'; repeatable."
    ),
    mode: str = typer.Option("hybrid", "--mode", "-m", help="vector, bm25 or hybrid."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="Hybrid weight: 1 = vector only, 0 = BM25."),
    limit: int = typer.Option(10, "--limit", "-k", min=1, max=1000, help="How many results."),
) -> None:
    """Search a collection and print the best matches as a table."""
    from core.errors import ValidationError
    from core.retrieval.embeddings import load_embedder
    from core.retrieval.indexing import query_index
    from core.retrieval.store import open_store

    if mode not in ("vector", "bm25", "hybrid"):
        raise ValidationError(f"--mode {mode!r}: use vector, bm25 or hybrid")
    settings = get_settings()
    store = open_store(settings)
    try:
        spec = store.get_collection(collection)
        embedder = load_embedder(settings)
        hits = query_index(
            store,
            embedder,
            collection=collection,
            text=text,
            tenant=tenant,
            mode=mode,  # type: ignore[arg-type]
            alpha=alpha,
            filters=filters,
            limit=limit,
        )
    finally:
        store.close()
    table = Table("#", "score", "id", "text", *spec.fields, title=f"{collection} (tenant {tenant}), {mode}")
    for rank, hit in enumerate(hits, start=1):
        shown = hit.text if len(hit.text) <= 100 else hit.text[:97] + "..."
        values = [str(hit.metadata.get(name, "")) for name in spec.fields]
        table.add_row(str(rank), f"{hit.score:.4f}", hit.id, shown, *values)
    console.print(table)
    if not hits:
        console.print("no matches")


@app.command("list")
def list_collections() -> None:
    """Collections with their schema, tenants and object counts."""
    from core.retrieval.store import open_store

    store = open_store(get_settings())
    try:
        table = Table("collection", "dim", "fields", "tenant", "objects", title=f"vector store: {store.backend}")
        for name in store.list_collections():
            spec = store.get_collection(name)
            fields = ", ".join(f"{k}:{v}" for k, v in spec.fields.items())
            for tenant in store.tenants(name) or ["-"]:
                count = store.count(name, tenant=tenant) if tenant != "-" else 0
                table.add_row(name, str(spec.dim), fields, tenant, str(count))
    finally:
        store.close()
    console.print(table)
