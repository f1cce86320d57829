"""Setting up a `SparseAutoencoder` fit: sizes, defaults and the `TrainConfig`."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from sklearn.utils._param_validation import StrOptions

from ..nn import ACTIVATIONS
from .config import TrainConfig

__all__ = ["RegisteredActivation", "sizes", "train_config"]

# parameters that do not change what is trained: where it runs (a checkpoint
# moves between devices and process counts), what is printed, logged or saved;
# `log_every` only sets when metrics reach the host (AuxK does not depend on it)
_NOT_IN_FINGERPRINT = ("verbose", "callback", "checkpoint_dir", "checkpoint_every",
                       "log_every", "distributed", "distributed_timeout", "resume",
                       "device")
_AUTO_STEPS = 2000  # optimizer steps of fit when max_iter is None


class RegisteredActivation(StrOptions):
    """Constraint: a name of the activation registry (read at check time)."""

    def __init__(self) -> None:
        super().__init__(set(ACTIVATIONS))

    def is_satisfied_by(self, val: Any) -> bool:
        return isinstance(val, str) and val in ACTIVATIONS

    def __str__(self) -> str:
        return f"a registered activation, one of {sorted(ACTIVATIONS)}"


def sizes(est, d: int) -> tuple[int, int, int]:
    """(n_components, k, k_aux) of ``est`` for ``d`` input features."""
    m = est.n_components or 8 * d
    k = est.k if est.k is not None else min(32, max(1, d // 2), m)
    if ACTIVATIONS[est.activation].takes_k and k > m:
        raise ValueError(f"k={k} must be <= n_components={m}.")
    k_aux = est.k_aux if est.k_aux is not None else min(m, max(1, d // 2))
    return m, k, min(k_aux, m)


def train_config(est, source, scale: float, *, partial: bool) -> TrainConfig:
    """The `TrainConfig` of a ``fit`` (or ``partial_fit``) of ``est`` on ``source``."""
    m, _, k_aux = sizes(est, est.n_features_in_)
    n_batches = source.n_batches
    passes = _passes(est, n_batches)
    n_steps = passes * n_batches if n_batches else None
    horizon = n_steps or 1000  # schedule length when the stream length is unknown
    lr = est.learning_rate or 2e-4 / math.sqrt(m / 2**14)
    alpha = (est.alpha if est.alpha is not None
             else ACTIVATIONS[est.activation].default_alpha)
    return TrainConfig(
        learning_rate=float(lr), max_passes=passes,
        n_steps=None if partial else n_steps,
        lr_warmup_steps=round(est.lr_warmup * horizon),
        lr_decay_steps=0 if partial or not n_steps else round(
            est.lr_decay * n_steps),
        sparsity_warmup_steps=round(est.sparsity_warmup * horizon),
        alpha=float(alpha), aux_coef=float(est.aux_coef), k_aux=k_aux,
        dead_window=est.dead_window or min(
            10_000_000, max(est.batch_size, 10 * m)),
        max_grad_norm=est.max_grad_norm, autocast=est.autocast,
        scale=scale, input_noise=float(est.input_noise), log_every=est.log_every,
        checkpoint_dir=None if est.checkpoint_dir is None else str(
            est.checkpoint_dir),
        checkpoint_every=est.checkpoint_every,
        resume="restart" if partial else est.resume,
        fingerprint=_fingerprint(est, source), verbose=bool(est.verbose),
    )


def _passes(est, n_batches: int | None) -> int:
    if est.max_iter is not None:
        return est.max_iter
    return max(1, math.ceil(_AUTO_STEPS / n_batches)) if n_batches else 1


def _fingerprint(est, source) -> dict[str, Any]:
    """The parameters and data description a checkpoint must match (JSON values)."""
    params = {k: _jsonable(v) for k, v in est.get_params(deep=False).items()
              if k not in _NOT_IN_FINGERPRINT}
    data = {"n_features": source.n_features, "n_samples": source.n_samples,
            "sum_of_first_rows": float(source.sample(256).double().sum())}
    # through JSON, so that it compares equal to the one read from the checkpoint
    return json.loads(json.dumps({"params": params, "data": data}))


def _jsonable(value: Any) -> Any:
    """``value`` as JSON values: a random generator instance (whose state fit
    consumes) is described by its type, other objects by their ``repr``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.random.RandomState | np.random.Generator):
        return f"a {type(value).__name__} instance"
    return repr(value)
