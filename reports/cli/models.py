"""``backprop-parity models``: list the model catalog (:mod:`scratch.catalog`) — per model its
name, the dataset it trains on, its architecture, how it trains, and one line saying what it is,
what its seed reported and which of its settings are the project's choice. ``--model NAME``
picks one in ``train``, ``check``, ``explain`` and ``report``. NumPy only."""

from __future__ import annotations

import argparse
import textwrap

from reports.cli.exit_codes import EXIT_BROKEN_PIPE, EXIT_OK
from scratch.catalog import MODELS

EXIT_STATUSES = (EXIT_OK, EXIT_BROKEN_PIPE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("settings a seed's write-up does not record are marked \"project's choice\"; "
                     "`--model NAME` uses a model in train, check, explain and report")


def run(args: argparse.Namespace) -> int:
    rows = [(model.name, model.dataset, architecture(model.spec()), training(model.spec()))
            for model in MODELS.values()]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    print("  ".join(cell.ljust(width) for cell, width in zip(HEADER, widths, strict=True)).rstrip())
    for row, model in zip(rows, MODELS.values(), strict=True):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        print(textwrap.fill(model.description, width=100, initial_indent="    ", subsequent_indent="    "))
    return EXIT_OK


HEADER = ("name", "dataset", "architecture", "training")


def architecture(spec) -> str:
    """Layer sizes, activations, loss and initializer, e.g. ``2-4-1 tanh/sigmoid bce small_normal``
    (a stack that is not an MLP: its input shape and layer kinds, ``1×28×28 conv2d-max_pool2d-…-dense
    cce he_normal``; the description under it has the details)."""
    if not spec.is_mlp:
        stack = "×".join(map(str, spec.input_shape)) + " " + "-".join(layer.kind for layer in spec.layers)
        return " ".join([stack, spec.loss, spec.init] + [f"l2={spec.l2:g}"] * (spec.l2 != 0))
    extras = [f"l2={spec.l2:g}"] * (spec.l2 != 0) + [f"dropout={spec.dropout:g}"] * (spec.dropout != 0)
    return " ".join([f"{'-'.join(map(str, spec.layer_sizes))} {spec.hidden_activation}/"
                     f"{spec.output_activation} {spec.loss} {spec.init}", *extras])


def training(spec) -> str:
    """Optimizer, learning rate, batch, epochs and dtype, e.g. ``sgd[torch] lr=0.1, full batch, …``."""
    optimizer = spec.optimizer
    batch = "full batch" if spec.batch_size is None else f"batch {spec.batch_size}"
    epochs = f"{spec.epochs} epoch{'s' if spec.epochs != 1 else ''}"
    return (f"{optimizer.name}[{optimizer.convention}] lr={optimizer.learning_rate:g}, {batch}, {epochs}, "
            f"{spec.dtype}")
