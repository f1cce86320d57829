"""Batched sparse-coding solvers: pure torch functions on tensors, CPU or GPU.

Every solver works in *Gram form*: with a dictionary ``V`` (n_components,
n_features), a batch ``X`` (n_samples, n_features), ``G = V V^T`` and
``C = X V^T``, the per-sample lasso

    min_u 0.5 * ||x - u V||^2 + alpha * ||u||_1     (u >= 0 if positive)

is ``min_u 0.5 u G u^T - u.c + alpha ||u||_1`` up to a constant. All rows are
solved at once, with no Python loop over samples; iterative solvers check
convergence every ``check_every`` iterations only (no host sync per step).

* `proximal` -- `threshold`, `ista`, `fista` and the lasso objective and gap;
* `greedy` -- `lasso_lars` (exact lasso), `lars`, `omp`;
* `homotopy` -- the batched LARS-lasso path behind `lasso_lars` and `lars`;
* `active_set` -- the active-set finisher of the homotopy's last rows.
"""

from collections.abc import Callable

from .greedy import lars, lasso_lars, masked_solve, omp, padded_support
from .proximal import (
    SolverResult,
    fista,
    ista,
    lasso_dual_gap,
    lasso_objective,
    soft_threshold,
    threshold,
)

__all__ = [
    "SOLVERS",
    "SolverResult",
    "fista",
    "ista",
    "lars",
    "lasso_dual_gap",
    "lasso_lars",
    "lasso_objective",
    "masked_solve",
    "omp",
    "padded_support",
    "soft_threshold",
    "threshold",
]

Solver = Callable[..., SolverResult]

SOLVERS: dict[str, Solver] = {
    "lasso_lars": lasso_lars,
    "fista": fista,
    "ista": ista,
    "omp": omp,
    "lars": lars,
    "threshold": threshold,
}
