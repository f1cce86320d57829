"""`SparseAutoencoder`: the SAE family behind the scikit-learn estimator API.

The estimator is thin: it validates parameters and data, builds a
`sparsecode.nn.SparseAutoencoderModule` with the registered activation, and
runs `sparsecode.sae.fit_loop`.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from .._utils import one_thread
from ..base import BaseSparseEstimator, DeviceOption
from ..metrics import fvu
from ..nn import ACTIVATIONS, SparseAutoencoderModule
from ._checkpoint import check_checkpoint_dir
from ._setup import RegisteredActivation, sizes, train_config
from .distributed import get_comm
from .sources import make_source
from .state import TrainState
from .training import fit_loop, split_batch

__all__ = ["SparseAutoencoder"]

_TRANSFORM_ROWS = 8192


class SparseAutoencoder(BaseSparseEstimator):
    """Sparse autoencoder: ``codes = act(W_enc (x - b_pre) + b_enc)``.

    ``x_hat = codes @ components_ + b_pre``; the SAE variant is the ``activation``:

    * ``"topk"`` -- exactly ``k`` active latents per sample (Gao et al. 2024),
      unit-norm decoder, AuxK loss on dead latents; trained with sparse
      decoding and sparse encoder gradients.
    * ``"batchtopk"`` -- the ``k * batch_size`` largest pre-activations of the
      batch during training; a running threshold at inference, so
      ``transform`` does not depend on the batch.
    * ``"relu"`` -- ReLU with an L1 penalty weighted by decoder-row norms
      (Anthropic, April 2024); ``alpha`` is the L1 coefficient.
    * ``"jumprelu"`` -- per-latent thresholds trained by straight-through estimators on
      an L0 penalty ``alpha`` (Rajamanoharan et al. 2024); ``activation_params`` sets
      ``bandwidth``, ``threshold_init`` and ``mode`` ("step" or "tanh").
    * ``"gated"`` -- gate and magnitude paths (Rajamanoharan et al. 2024).
    * ``"matryoshka"`` -- BatchTopK whose nested prefixes of latents each
      reconstruct x (``activation_params={"prefixes": [...]}``).

    Parameters
    ----------
    n_components : int, default=None
        Number of latents; ``8 * n_features`` when None.
    activation : str, default="topk"
        A name in `sparsecode.nn.ACTIVATIONS`.
    k : int, default=None
        Active latents per sample (topk, batchtopk, matryoshka);
        ``min(32, max(1, n_features // 2), n_components)`` when None.
    alpha : float, default=None
        Sparsity coefficient: L1 for relu and gated, L0 for jumprelu (unused
        by the TopK family). None uses the activation's ``default_alpha``
        (relu and gated 1.0, jumprelu 0.3; see `sparsecode.nn.variants`).
    max_iter : int, default=None
        Passes over X in ``fit``. None: enough passes for about 2000 steps
        (at least one), which trains a useful SAE on small and large arrays
        alike; one pass over an iterable of unknown length.
    batch_size : int, default=256
    learning_rate : float, default=None
        Adam learning rate; ``2e-4 / sqrt(n_components / 2**14)`` when None.
    lr_warmup, lr_decay, sparsity_warmup : float, default=0.01, 0.2, 0.05
        Fractions of the planned steps: linear lr warm-up, final linear lr
        decay to 0, linear warm-up of ``alpha``.
    dead_window : int, default=None
        A latent is dead when it has not fired on the last ``dead_window`` training
        samples; ``min(10_000_000, max(batch_size, 10 * n_components))`` when None.
    k_aux : int, default=None
        Dead latents used by AuxK; ``min(n_components, max(1, n_features //
        2))`` when None. 0 disables AuxK.
    aux_coef : float, default=1/32
    normalize_input : bool, default=True
        Train on ``s * x`` with ``s`` such that ``E||s x||^2 = n_features``,
        then fold ``s`` into the weights (codes are those of the scaled input
        divided by ``s``; decoder rows are unchanged).
    b_pre_init : {"geometric_median", "mean", "zeros"}, default="geometric_median"
    max_grad_norm : float, default=1.0
        Gradient-norm clipping (None disables).
    input_noise : float, default=0.0
        Denoising: in training only, the encoder sees ``x + input_noise * e`` (``e``
        standard Gaussian, seeded by ``random_state``) and reconstructs the clean x.
        In units of the normalised input (raw units without ``normalize_input``).
    activation_params : dict, default=None
        Extra arguments of the activation (see `sparsecode.nn.variants`).
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation and data order; training is deterministic given
        it (on the CPU).
    device : str, default="auto"
    dtype : {"float32", "float64"}, default=None
        Parameter dtype; that of X when None.
    autocast : {"bf16"}, default=None
        Run matmuls under bf16 `torch.autocast` (CPU or CUDA).
    log_every : int, default=50
        Steps between logged metrics (the only host synchronisations).
    checkpoint_dir : str or path-like, default=None
        Write atomic checkpoints there; ``fit`` resumes from a checkpoint
        made with the same parameters and data shape.
    checkpoint_every : int, default=None
        Steps between checkpoints (one is always written at the end).
    resume : {"auto", "restart"}, default="auto"
        With a ``checkpoint_dir``: ``"auto"`` continues from a checkpoint made
        with the same parameters and data and refuses (``ValueError`` naming
        the differing parameters) a folder holding another run's, which is
        never deleted; ``"restart"`` trains from scratch and replaces it.
    callback : callable, default=None
        Called with each history entry; returning True stops training (on
        every process when distributed: one returning True stops all).
    verbose : bool or int, default=False
        Progress bar (tqdm) or printed progress.
    distributed : {"auto", True, False}, default="auto"
        Data-parallel training over the processes of ``torch.distributed`` (a script
        launched by ``torchrun --nproc_per_node=N``; gloo on the CPU, NCCL on CUDA).
        ``"auto"`` trains data-parallel when the process group is initialised with
        several processes or the torchrun environment is set, True demands it, False
        trains each process on its own. Every process must call ``fit`` with the same X;
        each trains on ``batch_size / N`` rows of every batch (``batch_size`` is the
        global batch and must be divisible by N), rank 0 alone prints and writes
        checkpoints, and all end with rank 0's weights: those of a one-process run at
        the same ``batch_size``, up to float rounding.
    distributed_timeout : float, default=300
        Seconds a collective may wait for the other processes (a stopped or hung
        rank) before every live rank raises; also the group's, if sparsecode makes it.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Decoder rows (dictionary atoms).
    n_iter_ : int
        Passes over the data completed.
    n_steps_ : int
        Optimizer steps.
    history_ : list of dict
        Logged metrics: step, samples, lr, loss and its terms, fvu, l0,
        dead_fraction, time.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    metadata_ : dict
        Only on models read from another library (`sparsecode.io`): its
        metadata (hook name, model name, ...); `sparsecode.save` keeps it.

    Notes
    -----
    A model read from SAELens with ``normalize_activations`` "layer_norm" or
    "constant_norm_rescale" normalises each input before encoding (the module's
    ``input_norm``); `score` and ``module_(X)`` undo it on the reconstruction, while
    `inverse_transform` of codes alone returns it in the normalised space.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> sae = SparseAutoencoder(16, k=2, max_iter=2, device="cpu", random_state=0)
    >>> Z = sae.fit(X).transform(X)
    >>> Z.shape, int((Z != 0).sum(1).max()), sae.components_.shape
    ((200, 16), 2, (16, 8))
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "activation": [RegisteredActivation()],
        "k": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), None],
        "lr_warmup": [Interval(Real, 0, 1, closed="both")],
        "lr_decay": [Interval(Real, 0, 1, closed="both")],
        "sparsity_warmup": [Interval(Real, 0, 1, closed="both")],
        "dead_window": [Interval(Integral, 1, None, closed="left"), None],
        "k_aux": [Interval(Integral, 0, None, closed="left"), None],
        "aux_coef": [Interval(Real, 0, None, closed="left")],
        "normalize_input": ["boolean"],
        "b_pre_init": [StrOptions({"geometric_median", "mean", "zeros"})],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "input_noise": [Interval(Real, 0, None, closed="left")],
        "activation_params": [dict, None],
        "random_state": ["random_state"],
        "device": [DeviceOption()],
        "dtype": [StrOptions({"float32", "float64"}), type, None],
        "autocast": [StrOptions({"bf16"}), None],
        "log_every": [Interval(Integral, 1, None, closed="left")],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left"), None],
        "resume": [StrOptions({"auto", "restart"})],
        "callback": [callable, None],
        "verbose": ["verbose"],
        "distributed": [StrOptions({"auto"}), "boolean"],
        "distributed_timeout": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self, n_components=None, *, activation="topk", k=None, alpha=None,
        max_iter=None, batch_size=256, learning_rate=None, lr_warmup=0.01,
        lr_decay=0.2, sparsity_warmup=0.05, dead_window=None, k_aux=None,
        aux_coef=1 / 32, normalize_input=True, b_pre_init="geometric_median",
        max_grad_norm=1.0, activation_params=None, random_state=None,
        device="auto", dtype=None, autocast=None, log_every=50,
        checkpoint_dir=None, checkpoint_every=None, resume="auto", callback=None,
        verbose=False, distributed="auto", distributed_timeout=300.0,
        input_noise=0.0,
    ):
        self.n_components = n_components
        self.activation = activation
        self.k = k
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size, self.learning_rate = batch_size, learning_rate
        self.lr_warmup, self.lr_decay = lr_warmup, lr_decay
        self.sparsity_warmup = sparsity_warmup
        self.dead_window = dead_window
        self.k_aux, self.aux_coef = k_aux, aux_coef
        self.normalize_input = normalize_input
        self.b_pre_init = b_pre_init
        self.max_grad_norm = max_grad_norm
        self.activation_params = activation_params
        self.random_state = random_state
        self.device, self.dtype, self.autocast = device, dtype, autocast
        self.log_every = log_every
        self.checkpoint_dir, self.checkpoint_every = checkpoint_dir, checkpoint_every
        self.resume = resume
        self.callback, self.verbose = callback, verbose
        self.distributed, self.distributed_timeout = distributed, distributed_timeout
        self.input_noise = input_noise

    # ---------------------------------------------------------------- setup
    def _comm(self):
        """This fit's communicator (`sparsecode.sae.distributed`); sets the device."""
        comm, self._device = get_comm(self.distributed, self._device,
                                      self.distributed_timeout, self.get_params())
        comm.check_batch_size(self.batch_size)
        return comm

    def _module_options(self) -> dict:
        """Extra `SparseAutoencoderModule` arguments (a transcoder's outputs)."""
        return {}

    def _build(self, source, comm) -> tuple[TrainState, float]:
        """A freshly initialised module and training state for ``source``."""
        d = self.n_features_in_
        m, k, _ = sizes(self, d)
        kwargs = dict(self.activation_params or {})
        if ACTIVATIONS[self.activation].takes_k:
            kwargs["k"] = k
        sample = source.sample()
        model = SparseAutoencoderModule(d, m, self.activation, kwargs,
                                        dtype=sample.dtype, device=self._device,
                                        **self._module_options())
        # the input scale makes the *targets* of unit mean square
        msn = 0.0
        if self.normalize_input:
            msn = source.mean_sq_norm(d) if model.transcoder else source.mean_sq_norm()
        scale = math.sqrt(d / msn) if msn > 0 and math.isfinite(msn) else 1.0
        init_seed, data_seed = check_random_state(self.random_state).randint(
            np.iinfo(np.int32).max, size=2)
        comm.check_data(source)
        init_seed, data_seed, scale = comm.broadcast_floats(
            [int(init_seed), int(data_seed), scale])
        gen = torch.Generator().manual_seed(int(init_seed))
        x, y = split_batch(model, sample * scale)
        model.reset_parameters_(x, gen, b_pre_init=self.b_pre_init, decoder_norm=0.1,
                                Y_sample=y if model.transcoder else None)
        return TrainState(model, int(data_seed)), scale

    def _callback(self):
        cb = self.callback
        return None if cb is None else lambda e: cb({**e, "estimator": self})

    def _finish(self, state: TrainState, scale: float) -> None:
        state.model.fold_scale_(scale)
        self._state, self._scale = state, scale
        self.components_ = state.model.W_dec.detach().cpu().numpy().copy()
        self.n_iter_, self.n_steps_ = state.pass_index, state.step
        self.history_ = [dict(h) for h in state.history]

    def _adopt(self, module: SparseAutoencoderModule, *, scale: float = 1.0,
               n_iter: int = 0, n_steps: int = 0, history: list | None = None
               ) -> SparseAutoencoder:
        """Become fitted with ``module`` (acting on raw inputs), e.g. from a file."""
        self._device = module.W_dec.device
        state = TrainState(module.eval(), seed=0)
        state.pass_index, state.step = int(n_iter), int(n_steps)
        state.history = list(history or [])
        self.n_features_in_ = module.n_features
        self._finish(state, 1.0)
        self._scale = float(scale)
        return self

    # ----------------------------------------------------------- training
    def fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        """Train from scratch for ``max_iter`` passes over X.

        Parameters
        ----------
        X : array-like, torch.Tensor, numpy.memmap or iterable of batches
            Training data of shape (n_samples, n_features); an iterable yields
            2-D chunks (streamed and shuffled in a bounded buffer).
        y : None
            Ignored.

        Returns
        -------
        self
        """
        return self._train(X, None, partial=False)

    def partial_fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        """One more pass over X (the first call initialises from X).

        The learning rate is warmed up as in ``fit`` with ``max_iter`` passes
        over the first X as horizon, and then stays constant.

        Returns
        -------
        self
        """
        return self._train(X, None, partial=True)

    def _source(self, X: Any, Y: Any, *, reset: bool):
        """The batch source of a fit (`sparsecode.sae.sources`)."""
        return make_source(self, X, reset=reset)

    def _train(self, X: Any, Y: Any, *, partial: bool) -> SparseAutoencoder:
        first = not partial or not hasattr(self, "_state")
        if first:
            self._validate_params()
            self._setup_device()
        comm = self._comm()
        check_checkpoint_dir(self.checkpoint_dir, comm)  # before any setup or step
        source = self._source(X, Y, reset=first)
        if first:
            state, scale = self._build(source, comm)
        else:
            state, scale = self._state.to(self._device), self._scale
            state.model.fold_scale_(1.0 / scale)
        config = train_config(self, source, scale, partial=partial)
        if partial:
            config.max_passes = state.pass_index + 1
        with one_thread(self._device):  # small steps: no thread barriers
            fit_loop(state, source, config, self._callback(), comm)
        self._finish(state, scale)
        return self

    # ------------------------------------------------------------ inference
    @property
    def module_(self) -> SparseAutoencoderModule:
        """The fitted `SparseAutoencoderModule` (acting on raw inputs)."""
        self._check_fitted()
        return self._state.model

    @torch.no_grad()
    def _encode(self, Xt: torch.Tensor) -> torch.Tensor:
        model = self.module_.eval()
        dtype = model.W_dec.dtype
        parts = [model.encode(Xt[lo:lo + _TRANSFORM_ROWS].to(dtype))
                 for lo in range(0, Xt.shape[0], _TRANSFORM_ROWS)]
        return torch.cat(parts).to(Xt.dtype)

    _transform_tensor = _encode  # batchtopk: its learned threshold

    def _inverse_transform_tensor(self, codes: torch.Tensor) -> torch.Tensor:
        model = self.module_
        with torch.no_grad():  # codes @ components_ + b_pre
            return model.decode(codes.to(model.W_dec.dtype)).to(codes.dtype)

    def score(self, X: Any, y: Any = None) -> float:
        """Negative fraction of variance unexplained, ``-fvu(X, X_hat)``.

        FVU is pooled over the samples with a per-feature mean
        (`sparsecode.metrics.fvu`); higher is better, 0 is perfect.

        Returns
        -------
        float
        """
        self._check_fitted()
        Xt, _ = self._validate_input(X, reset=False)
        return -fvu(Xt, self._reconstruct(Xt))

    @torch.no_grad()
    def _reconstruct(self, Xt: torch.Tensor) -> torch.Tensor:
        """``module_(X)`` (a transcoder's prediction), normalisation undone."""
        model = self.module_.eval()
        dtype = model.W_dec.dtype
        return torch.cat([model(Xt[lo:lo + _TRANSFORM_ROWS].to(dtype))
                          for lo in range(0, Xt.shape[0], _TRANSFORM_ROWS)]
                         ).to(Xt.dtype)

