"""The fast run of every reliability proof (``python -m proofs`` runs the long ones)."""

import pytest

from proofs import Proof, discover

PROOFS = discover()


@pytest.mark.parametrize("proof", PROOFS, ids=[proof.name for proof in PROOFS])
async def test_proof_holds_in_its_fast_run(proof: Proof) -> None:
    outcome = await proof.run(False)
    assert outcome.held, outcome.failures or [f for f in outcome.figures if not f.held]
