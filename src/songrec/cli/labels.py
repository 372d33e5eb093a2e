"""`songrec labels review|accept|reject`: the labels POST /labels held because they contradict
the catalog or an earlier label (store.label_review), in the event store the API writes."""

from __future__ import annotations

import click

from songrec.cli.common import load_config


@click.group()
def labels() -> None:
    """Labels held for review: list them, accept them (exported, scored) or reject them."""


@labels.command()
def review() -> None:
    """List the held labels, oldest first, with why each is held."""
    from songrec.store.engine import connect
    from songrec.store.label_review import held_labels

    engine = connect(load_config().serve().event_store_url)
    try:
        held = held_labels(engine)
    finally:
        engine.dispose()
    if held.empty:
        click.echo("no labels held for review")
        return
    for row in held.itertuples(index=False):
        click.echo(f"{row.id}\t{row.track_id}\t{row.genre}\t{row.reason}")
    click.echo(f"{len(held)} held: `songrec labels accept ID ...` or `reject ID ...` (or --all)")


def _decide(decision: str, label_ids: tuple[int, ...], everything: bool) -> None:
    from songrec.store.engine import connect
    from songrec.store.label_review import decide

    if not label_ids and not everything:
        raise click.UsageError("name the label ids (see `songrec labels review`), or --all")
    engine = connect(load_config().serve().event_store_url)
    try:
        changed = decide(engine, decision, None if everything else label_ids)
    finally:
        engine.dispose()
    click.echo(f"{changed} label(s) {decision}")
    if label_ids and changed < len(set(label_ids)):
        raise click.ClickException(
            f"{len(set(label_ids)) - changed} of the ids were not held (already decided?)"
        )


@labels.command()
@click.argument("label_ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True, help="Every held label.")
def accept(label_ids: tuple[int, ...], everything: bool) -> None:
    """Accept held labels: the next export sends them to retraining."""
    _decide("accepted", label_ids, everything)


@labels.command()
@click.argument("label_ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True, help="Every held label.")
def reject(label_ids: tuple[int, ...], everything: bool) -> None:
    """Reject held labels: never exported, never scored."""
    _decide("rejected", label_ids, everything)
