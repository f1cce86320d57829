"""The one training loop of the sparse autoencoder family.

`fit_loop` trains a `SparseAutoencoderModule` on batches from a source of
`sparsecode._sae_data` with Adam. Variants plug in through their activation:
its ``loss_terms`` (summed and logged, `sparsecode.nn.losses`) and its
``unit_norm_decoder`` constraint (gradient component parallel to each decoder
row removed before the step, rows renormalised after it). The loop also does
learning-rate warm-up and linear decay, sparsity-coefficient warm-up,
gradient-norm clipping, optional bf16 autocast, dead-latent tracking counted in
samples (which feeds AuxK), logging every ``log_every`` steps (the only host
synchronisations), a progress bar, and atomic checkpoints from which a run
resumes to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._checkpoint import read_checkpoint, write_checkpoint
from .nn.losses import sae_losses
from .nn.modules import SparseAutoencoderModule

__all__ = ["TrainConfig", "TrainState", "fit_loop"]


@dataclass
class TrainConfig:
    """Settings of `fit_loop` (steps are optimizer steps, windows are samples)."""

    learning_rate: float
    max_passes: int = 1
    n_steps: int | None = None  # planned total steps: horizon of the lr decay
    lr_warmup_steps: int = 0
    lr_decay_steps: int = 0
    sparsity_warmup_steps: int = 0
    alpha: float = 0.0
    aux_coef: float = 1 / 32
    k_aux: int = 0
    dead_window: int = 10_000_000
    max_grad_norm: float | None = 1.0
    autocast: str | None = None
    scale: float = 1.0  # inputs are multiplied by this (normalisation)
    log_every: int = 50
    checkpoint_dir: str | None = None
    checkpoint_every: int | None = None
    resume: bool = True
    fingerprint: str = ""
    verbose: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 6.25e-10


class TrainState:
    """Everything a run needs to continue: module, optimizer, counters, RNG.

    Pickles with all tensors on the CPU (the optimizer as its state dict).
    """

    def __init__(self, model: SparseAutoencoderModule, seed: int) -> None:
        self.model = model
        self.optimizer: torch.optim.Optimizer | None = None
        self.opt_state: dict | None = None
        self.data_gen = torch.Generator().manual_seed(int(seed))
        self.pass_rng = self.data_gen.get_state()
        self.step = self.samples = self.pass_index = self.pass_position = 0
        device = model.W_dec.device
        self.since_fired = torch.zeros(model.n_components, dtype=torch.long,
                                       device=device)
        self.aux_on = False
        self.acc: dict[str, torch.Tensor] = {}
        self.acc_steps = self.acc_samples = 0
        self.history: list[dict] = []
        self.elapsed = 0.0

    # ------------------------------------------------------------ optimizer
    def params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def param_groups(self) -> list[dict]:
        """Adam groups: module weights, then the activation's own parameters
        (with the activation's ``lr_scale``, e.g. JumpReLU thresholds)."""
        act = self.model.activation
        own = {id(p) for p in act.parameters()}
        groups = [{"params": [p for p in self.params() if id(p) not in own],
                   "lr_scale": 1.0}]
        act_params = [p for p in act.parameters() if p.requires_grad]
        if act_params:
            groups.append({"params": act_params, "lr_scale": float(act.lr_scale)})
        return groups

    def ensure_optimizer(self, config: TrainConfig) -> torch.optim.Optimizer:
        """The live Adam optimizer (rebuilt from ``opt_state`` if needed)."""
        if self.optimizer is None:
            kw = {"lr": config.learning_rate, "betas": config.betas, "eps": config.eps}
            try:
                self.optimizer = torch.optim.Adam(self.param_groups(), fused=True, **kw)
            except (RuntimeError, TypeError, ValueError):
                self.optimizer = torch.optim.Adam(self.param_groups(), **kw)
            if self.opt_state is not None:
                self.optimizer.load_state_dict(self.opt_state)
                self.opt_state = None
        return self.optimizer

    def to(self, device: torch.device) -> TrainState:
        """Move module, optimizer state and counters to ``device``."""
        if self.optimizer is not None:
            self.opt_state, self.optimizer = self.optimizer.state_dict(), None
        self.model.to(device)
        self.since_fired = self.since_fired.to(device)
        self.acc = {k: v.to(device) for k, v in self.acc.items()}
        return self

    # ------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.optimizer is not None:
            state["opt_state"] = self.optimizer.state_dict()
        state["optimizer"] = None
        state["opt_state"] = _to_cpu(copy.deepcopy(state["opt_state"]))
        state["model"] = copy.deepcopy(self.model).to("cpu")
        state["since_fired"] = self.since_fired.cpu()
        state["acc"] = {k: v.cpu() for k, v in self.acc.items()}
        state["data_gen"] = self.data_gen.get_state()
        return state

    def __setstate__(self, state: dict) -> None:
        gen = torch.Generator()
        gen.set_state(state["data_gen"])
        state["data_gen"] = gen
        self.__dict__.update(state)

    # ---------------------------------------------------------- checkpoints
    def to_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors (module, optimizer, counters, RNG) and JSON metadata."""
        opt = self.optimizer.state_dict() if self.optimizer else self.opt_state
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for i, pstate in (opt or {}).get("state", {}).items():
            tensors.update({f"opt.{i}.{k}": v for k, v in pstate.items()})
        tensors.update({f"acc.{k}": v for k, v in self.acc.items()})
        tensors["since_fired"] = self.since_fired
        tensors["rng.data"] = self.data_gen.get_state()
        tensors["rng.pass"] = self.pass_rng
        groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
                  for g in (opt or {}).get("param_groups", [])]
        meta = {k: getattr(self, k) for k in ("samples", "pass_index", "pass_position",
                                              "aux_on", "acc_steps", "acc_samples",
                                              "history", "elapsed")}
        return tensors, {**meta, "param_groups": groups}

    def load_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Restore the state written by `to_checkpoint`."""
        device = self.model.W_dec.device
        model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_sd, strict=True)
        opt_state: dict = {}
        for key, val in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                opt_state.setdefault(int(i), {})[name] = val
        self.optimizer = None
        self.opt_state = {"state": opt_state, "param_groups": meta["param_groups"]}
        self.acc = {k[4:]: v.to(device) for k, v in tensors.items()
                    if k.startswith("acc.")}
        self.since_fired = tensors["since_fired"].to(device)
        self.data_gen.set_state(tensors["rng.data"])
        self.pass_rng = tensors["rng.pass"]
        self.step = int(meta["step"])
        for k in ("samples", "pass_index", "pass_position", "aux_on", "acc_steps",
                  "acc_samples", "history", "elapsed"):
            setattr(self, k, meta[k])


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


# ----------------------------------------------------------------- schedules
def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``lr_warmup_steps``, linear decay to 0 at ``n_steps``."""
    f = min(1.0, (step + 1) / config.lr_warmup_steps) if config.lr_warmup_steps else 1.0
    if config.n_steps and config.lr_decay_steps:
        f = min(f, max(0.0, (config.n_steps - step) / config.lr_decay_steps))
    return f


def sparsity_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up of the sparsity coefficient over ``sparsity_warmup_steps``."""
    w = config.sparsity_warmup_steps
    return min(1.0, (step + 1) / w) if w else 1.0


# ---------------------------------------------------------------- one step
def _train_step(state: TrainState, x: torch.Tensor, config: TrainConfig,
                opt: torch.optim.Optimizer) -> None:
    model = state.model
    if config.scale != 1.0:
        x = x * config.scale
    use_aux = (state.aux_on and config.k_aux > 0
               and "auxk" in model.activation.loss_terms)
    dead = state.since_fired >= config.dead_window if use_aux else None
    with _autocast(config.autocast, x.device):
        out = model.forward_train(x, dead, config.k_aux)
        terms = sae_losses(out, x, model,
                           alpha=config.alpha * sparsity_factor(state.step, config),
                           aux_coef=config.aux_coef)
    loss = sum(terms.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if model.activation.unit_norm_decoder:
        model.remove_parallel_grad_()
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(state.params(), config.max_grad_norm)
    lr = config.learning_rate * lr_factor(state.step, config)
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    opt.step()
    if model.activation.unit_norm_decoder:
        model.normalize_decoder_()
    _track(state, out, x, terms, loss)


@torch.no_grad()
def _track(state: TrainState, out: dict, x: torch.Tensor, terms: dict,
           loss: torch.Tensor) -> None:
    """Dead-latent counters and metric sums, all on the device (no sync)."""
    n = x.shape[0]
    if "idx" in out:
        active = out["vals"] > 0
        fired = torch.zeros_like(state.since_fired).index_add_(
            0, out["idx"].reshape(-1), active.reshape(-1).long()) > 0
    else:
        active = out["codes"] > 0
        fired = active.any(0)
    state.since_fired = torch.where(fired, 0, state.since_fired + n)
    xf = x.float()
    sums = {"loss": loss, **terms,
            "sse": (xf - out["x_hat"].float()).pow(2).sum(),
            "sst": (xf - xf.mean(0)).pow(2).sum(), "nnz": active.sum()}
    for name, val in sums.items():
        val = val.detach().double()
        state.acc[name] = state.acc[name] + val if name in state.acc else val
    state.step += 1
    state.samples += n
    state.acc_steps += 1
    state.acc_samples += n


# --------------------------------------------------------------------- logging
def _log(state: TrainState, config: TrainConfig) -> dict:
    """Turn the metric sums into a history entry (one host synchronisation)."""
    names = list(state.acc)
    dead = state.since_fired >= config.dead_window
    stacked = torch.stack([state.acc[k] for k in names]
                          + [dead.double().mean(), dead.any().double()])
    values = dict(zip(names + ["dead_fraction", "any_dead"], stacked.tolist(),
                      strict=True))
    steps, n = max(state.acc_steps, 1), max(state.acc_samples, 1)
    entry = {"step": state.step, "samples": state.samples,
             "lr": config.learning_rate * lr_factor(state.step - 1, config)}
    entry.update({k: values[k] / steps for k in names
                  if k not in ("sse", "sst", "nnz")})
    entry["fvu"] = values["sse"] / values["sst"] if values["sst"] > 0 else float("nan")
    entry["l0"] = values["nnz"] / n
    entry["dead_fraction"] = values["dead_fraction"]
    entry["time"] = state.elapsed
    state.aux_on = bool(values["any_dead"])
    state.history.append(entry)
    state.acc, state.acc_steps, state.acc_samples = {}, 0, 0
    return entry


class _Progress:
    """tqdm bar when available (imported lazily), else plain prints."""

    def __init__(self, enabled: bool, total: int | None, initial: int) -> None:
        self.enabled, self.bar, self.last = enabled, None, initial
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, initial=initial, desc="SparseAutoencoder",
                            unit="step")

    def update(self, entry: dict) -> None:
        n_steps, self.last = entry["step"] - self.last, entry["step"]
        if not self.enabled:
            return
        info = {"loss": f"{entry['loss']:.4g}", "fvu": f"{entry['fvu']:.3f}",
                "l0": f"{entry['l0']:.1f}", "dead": f"{entry['dead_fraction']:.2f}"}
        if self.bar is None:
            print(f"[SparseAutoencoder] step {entry['step']} "
                  + " ".join(f"{k} {v}" for k, v in info.items()), flush=True)
        else:
            self.bar.update(n_steps)
            self.bar.set_postfix(info, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _autocast(mode: str | None, device: torch.device):
    if mode is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# ----------------------------------------------------------------- the loop
def fit_loop(
    state: TrainState,
    source,
    config: TrainConfig,
    callback: Callable[[dict], bool | None] | None = None,
) -> TrainState:
    """Train ``state.model`` on ``source`` until ``config.max_passes`` passes.

    Parameters
    ----------
    state : TrainState
        Fresh (from initialisation) or continuing; replaced by the checkpoint
        in ``config.checkpoint_dir`` when ``config.resume`` and its
        fingerprint matches.
    source : TensorBatches, MemmapBatches or IterableBatches
    config : TrainConfig
    callback : callable, default=None
        Called with each history entry; returning True stops training.

    Returns
    -------
    TrainState
    """
    if config.checkpoint_dir and config.resume:
        _maybe_resume(state, config)
    opt = state.ensure_optimizer(config)
    state.model.train()
    progress = _Progress(config.verbose, config.n_steps, state.step)
    try:
        while state.pass_index < config.max_passes:
            if state.pass_position == 0:
                state.pass_rng = state.data_gen.get_state()
            else:
                state.data_gen.set_state(state.pass_rng)
            if _run_pass(state, source, config, opt, progress, callback):
                break
            if state.pass_position == 0:  # an exhausted one-shot iterator
                break
            state.pass_index, state.pass_position = state.pass_index + 1, 0
        if state.acc_steps:
            progress.update(_log(state, config))
        if config.checkpoint_dir:
            write_checkpoint(config.checkpoint_dir, state.step, *_ckpt(state, config))
    finally:
        progress.close()
        state.model.eval()
    return state


def _run_pass(state, source, config, opt, progress, callback) -> bool:
    """One pass over ``source``; True when training must stop."""
    t0 = time.perf_counter()
    for batch in source.batches(state.data_gen, start=state.pass_position):
        _train_step(state, batch, config, opt)
        state.pass_position += 1
        if state.step % config.log_every == 0:
            state.elapsed += time.perf_counter() - t0
            t0 = time.perf_counter()
            entry = _log(state, config)
            progress.update(entry)
            if callback is not None and callback(entry):
                return True
        if (config.checkpoint_dir and config.checkpoint_every
                and state.step % config.checkpoint_every == 0):
            write_checkpoint(config.checkpoint_dir, state.step, *_ckpt(state, config))
    state.elapsed += time.perf_counter() - t0
    return False


def _ckpt(state: TrainState, config: TrainConfig) -> tuple[dict, dict]:
    tensors, meta = state.to_checkpoint()
    return tensors, {**meta, "fingerprint": config.fingerprint}


def _maybe_resume(state: TrainState, config: TrainConfig) -> None:
    found = read_checkpoint(config.checkpoint_dir)
    if found is None or found[1].get("fingerprint") != config.fingerprint:
        return
    state.load_checkpoint(*found)
