"""Which orientation each per-step product of the fast loops runs in: a rule of the shapes.

The per-step product of a recurrent loop, a (B, K) @ M (K, N) (h_{t-1} U in forward, dz_t U^T
in backward), can be computed as written or as (M^T a^T)^T; the BLAS packs its operands on
every call, and with few rows the second form can be faster for a large M. The two forms round
differently, so the choice must never depend on a timing (which changes with the machine's
load, and would make two runs of the same command differ): it follows these rules of the
shapes alone. They were set from timings of both forms on every bench shape
(``benchmarks/orientation_rule.py``; the table is in benchmarks/README.md): a rule can lose a
few percent where the two forms are close, never the bits.
"""
from __future__ import annotations

TRANSPOSED_MAX_ROWS = 64          # more rows than this: the plain product packs well enough
TRANSPOSED_MIN_WEIGHT = 1 << 19   # fewer weight values than this: the transposed add costs more than it saves


def transposed_products(B: int, K: int, N: int) -> bool:
    """Whether a layer's per-step product a (B, K) @ M (K, N) runs as (M^T a^T)^T: few rows
    (B <= 64) and a large M (K N >= 2^19, e.g. ptb-medium's 650 x 2600, char's 512 x 2048;
    not ptb-small's 200 x 800 or long-small's 64 x 256)."""
    return B <= TRANSPOSED_MAX_ROWS and K * N >= TRANSPOSED_MIN_WEIGHT


def compiled_weight_transposed(direction: str, rows: int, H: int, G: int) -> bool:
    """Whether the compiled loops (``compiled.py``) read U (H, G) as a transposed copy (G, H) in
    ``direction``'s per-step product for a block of ``rows`` batch rows. Forward: with few
    rows (<= 16) and a large U (H G >= 2^20, ptb-medium); backward: never (U as stored wins
    or ties on every bench shape). The compiled loops run the BLAS on one thread."""
    return direction == "forward" and rows <= 16 and H * G >= 1 << 20
