"""Argument types shared by the commands: each rejects a bad value with argparse's usage error
(exit status 2) naming the flag and what it expects."""

from __future__ import annotations

import argparse
import math

from scratch.catalog import MODELS


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def names(choices: tuple[str, ...]):
    """A comma-separated list of distinct names, each one of ``choices``."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",")]
        for item in items:
            if item not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown name {item!r} in {text!r}; expected one of {', '.join(choices)}")
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"a name is listed twice in {text!r}")
        return items

    return parse


def positive_ints(text: str) -> list[int]:
    """A comma-separated list of integers >= 1."""
    try:
        return [positive_int(item.strip()) for item in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers >= 1, got {text!r}") from None


def model_name(text: str) -> str:
    """The name of a model in the catalog (:mod:`scratch.catalog`); an unknown one lists them all."""
    if text not in MODELS:
        raise argparse.ArgumentTypeError(
            f"unknown model {text!r}; the catalog has {', '.join(MODELS)} (see `backprop-parity models`)")
    return text

