"""Run the reliability proofs: ``python -m proofs [--long] [NAME ...]``.

Without names every proof runs. Exits 1 when any claim did not hold, 2 on a bad argument.
"""

import argparse
import asyncio
import sys

from proofs import Outcome, Proof, discover


def main(argv: list[str] | None = None) -> int:
    proofs = {proof.name: proof for proof in discover()}
    parser = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the full-size runs, not the fast ones")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(proofs) or "none yet")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in proofs]
    if unknown:
        parser.error(f"no proof named {', '.join(unknown)}; the proofs are {', '.join(proofs)}")
    chosen = [proofs[name] for name in args.names] if args.names else list(proofs.values())
    held = True
    for proof in chosen:
        outcome = asyncio.run(proof.run(args.long))
        _print(proof, outcome)
        held = held and outcome.held
    return 0 if held else 1


def _print(proof: Proof, outcome: Outcome) -> None:
    print(f"\n## {proof.name}: {'held' if outcome.held else 'FAILED'}\n{proof.claim}\n")
    for figure in outcome.figures:
        target = f" (target {figure.target})" if figure.target else ""
        mark = "" if figure.held else "  <- not held"
        print(f"- {figure.name}: {figure.value}{target}{mark}")
    for failure in outcome.failures:
        print(f"- failure: {failure}")


if __name__ == "__main__":
    sys.exit(main())
