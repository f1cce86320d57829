"""`TrainConfig`: the settings of the SAE training loop, checked in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Settings of `sparsecode.sae.fit_loop`.

    Steps are optimizer steps; windows are counted in samples. Every
    cross-field rule is checked in ``__post_init__`` (and by `check`, after a
    field is changed).

    Examples
    --------
    >>> from sparsecode.sae import TrainConfig
    >>> TrainConfig(learning_rate=1e-3, n_steps=100, lr_decay_steps=20).lr_decay_steps
    20
    """

    learning_rate: float
    """Adam's learning rate after the warm-up (> 0)."""

    max_passes: int = 1
    """Passes over the data source before training stops (>= 1)."""

    n_steps: int | None = None
    """Planned total steps: the horizon of the lr decay (None: unknown)."""

    lr_warmup_steps: int = 0
    """Steps of linear learning-rate warm-up from 0."""

    lr_decay_steps: int = 0
    """Final steps of linear learning-rate decay to 0 (needs ``n_steps``)."""

    sparsity_warmup_steps: int = 0
    """Steps of linear warm-up of the sparsity coefficient ``alpha``."""

    alpha: float = 0.0
    """Sparsity coefficient of the terms weighted by ``alpha`` (>= 0)."""

    aux_coef: float = 1 / 32
    """Coefficient of the AuxK term (>= 0)."""

    k_aux: int = 0
    """Dead latents decoded by AuxK (0 disables it)."""

    dead_window: int = 10_000_000
    """A latent is dead when it has not fired on this many training samples."""

    max_grad_norm: float | None = 1.0
    """Global gradient-norm clipping (None disables it)."""

    autocast: str | None = None
    """``"bf16"`` runs the forward pass under bf16 `torch.autocast`."""

    scale: float = 1.0
    """Inputs are multiplied by this before each step (input normalisation)."""

    input_noise: float = 0.0
    """Standard deviation of the Gaussian noise added to the (scaled) encoder
    input of each step, the target staying clean (a denoising autoencoder;
    >= 0, 0 adds none)."""

    log_every: int = 50
    """Steps between history entries (the only host synchronisations)."""

    checkpoint_dir: str | None = None
    """Folder of the atomic checkpoints (None: no checkpoints)."""

    checkpoint_every: int | None = None
    """Steps between checkpoints (one is always written at the end)."""

    resume: str = "auto"
    """``"auto"``: resume from the newest good checkpoint in ``checkpoint_dir``
    recording the same ``fingerprint`` and refuse (``ValueError``) one of
    another run; ``"restart"``: train from scratch and replace them."""

    fingerprint: dict[str, Any] = field(default_factory=dict)
    """Identity of the run: ``{"params": {...}, "data": {...}}`` of JSON values
    (everything that changes training); only its checkpoints resume."""

    verbose: bool = False
    """Show a progress bar (or print progress without tqdm)."""

    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's moment coefficients."""

    eps: float = 6.25e-10
    """Adam's epsilon."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the first field that breaks a rule."""
        rules = [
            (self.learning_rate > 0 and math.isfinite(self.learning_rate),
             "learning_rate must be a positive finite number"),
            (self.max_passes >= 1, "max_passes must be >= 1"),
            (self.n_steps is None or self.n_steps >= 0, "n_steps must be >= 0"),
            (min(self.lr_warmup_steps, self.lr_decay_steps,
                 self.sparsity_warmup_steps) >= 0,
             "warm-up and decay steps must be >= 0"),
            (not self.lr_decay_steps or self.n_steps is not None,
             "lr_decay_steps needs n_steps (the horizon of the decay)"),
            (self.alpha >= 0 and self.aux_coef >= 0, "alpha and aux_coef must be >= 0"),
            (self.k_aux >= 0, "k_aux must be >= 0"),
            (self.dead_window >= 1, "dead_window must be >= 1"),
            (self.max_grad_norm is None or self.max_grad_norm > 0,
             "max_grad_norm must be > 0 or None"),
            (self.autocast in (None, "bf16"), "autocast must be None or 'bf16'"),
            (self.scale > 0 and math.isfinite(self.scale), "scale must be positive"),
            (self.input_noise >= 0 and math.isfinite(self.input_noise),
             "input_noise must be a finite number >= 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.checkpoint_every is None or self.checkpoint_every >= 1,
             "checkpoint_every must be >= 1 or None"),
            (self.resume in ("auto", "restart"), "resume must be 'auto' or 'restart'"),
            (isinstance(self.fingerprint, dict), "fingerprint must be a dict"),
            (all(0 <= b < 1 for b in self.betas), "betas must lie in [0, 1)"),
            (self.eps > 0, "eps must be > 0"),
        ]
        for ok, message in rules:
            if not ok:
                raise ValueError(f"TrainConfig: {message}.")
