"""The reliability proofs: each module makes one claim about the product and checks it.

A proof module defines ``PROOF = Proof(...)``: a name, what it claims, and one coroutine
that runs it either fast (seconds to a minute, run by the test suite in CI) or long (the full
size the claim is about, run from ``python -m proofs --long``). Each run returns the figures it
measured and whether the claim held; ``docs/reliability.md`` records the last long run's.
"""

import importlib
import pkgutil
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured value, with the bound it is held to when there is one."""

    name: str
    value: str
    target: str = ""
    held: bool = True


@dataclass
class Outcome:
    """What one run of a proof found."""

    figures: list[Figure] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    """Each way the claim did not hold, in a sentence a person can act on."""

    @property
    def held(self) -> bool:
        return not self.failures and all(figure.held for figure in self.figures)

    def measure(self, name: str, value: object, target: str = "", *, held: bool = True) -> None:
        self.figures.append(Figure(name, str(value), target, held))


@dataclass(frozen=True)
class Proof:
    name: str
    claim: str
    run: Callable[[bool], Coroutine[Any, Any, Outcome]]
    """Runs the proof; the argument is True for the long run."""


def discover() -> list[Proof]:
    """Every proof module's ``PROOF``, in module name order."""
    proofs: list[Proof] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        proof = getattr(loaded, "PROOF", None)
        if isinstance(proof, Proof):
            proofs.append(proof)
    return proofs
