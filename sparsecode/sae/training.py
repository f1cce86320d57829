"""The one training loop of the sparse autoencoder family.

`fit_loop` trains a `SparseAutoencoderModule` on batches from a source of
`sparsecode.sae.sources` with Adam. Variants plug in through their activation:
its ``loss_terms`` (summed and logged, `sparsecode.nn.losses`) and its
``unit_norm_decoder`` constraint (gradient component parallel to each decoder
row removed before the step, rows renormalised after it). The loop also does
learning-rate warm-up and linear decay, sparsity-coefficient warm-up,
gradient-norm clipping, optional bf16 autocast, dead-latent tracking counted in
samples (which turns AuxK on once a latent is dead, checked after every
quarter of the dead window so that training does not depend on when metrics
are logged), logging every ``log_every`` steps (the
only host synchronisations; a non-finite loss stops training with a
`FloatingPointError`), a progress bar, and atomic, verified checkpoints
(`sparsecode.sae._checkpoint`) from which a run resumes to the same weights as
an uninterrupted one.

Under ``torch.distributed`` a communicator (`sparsecode.sae.distributed`) makes
each process train on its share of every global batch with the gradients,
dead-latent counters and metrics reduced over all processes; with one process
its hooks are the identity.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import torch

from ..base import DivergenceError
from ..nn import TrainOutput, sae_losses
from ._checkpoint import CheckpointFolder, check_checkpoint_dir, resume_from
from .config import TrainConfig
from .distributed import Local
from .state import TrainState

__all__ = ["clip_gradients", "fit_loop", "lr_factor", "sparsity_factor",
           "split_batch"]


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
def split_batch(model, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input, target) of a batch: a transcoder's rows are ``[x | y]``."""
    if not model.transcoder:
        return batch, batch
    d = model.n_features  # (contiguous: the kernels are faster on them)
    return batch[:, :d].contiguous(), batch[:, d:].contiguous()


def _train_step(state: TrainState, batch: torch.Tensor, config: TrainConfig,
                opt: torch.optim.Optimizer, comm: Local) -> None:
    model = state.model
    if config.scale != 1.0:
        batch = batch * config.scale
    x, y = split_batch(model, batch)
    if model.input_norm != "none":  # (models read from SAELens; y is x here)
        x = y = model.normalize(x)[0]
    if config.input_noise:  # the encoder sees noisy inputs, y stays clean
        x = x + config.input_noise * _step_noise(state, x, comm)
    # AuxK runs once a latent is dead: checked after every quarter of the dead
    # window (in samples, so that training does not depend on log_every)
    use_aux = (state.aux_on and config.k_aux > 0
               and "auxk" in model.activation.loss_terms)
    dead = state.since_fired >= config.dead_window if use_aux else None
    with _autocast(config.autocast, x.device):
        out = model.forward_train(x, dead, config.k_aux)
        skip = model.skip(x)  # the codes' target is what the skip term leaves
        target = y if skip is None else y - skip
        terms = comm.weigh(sae_losses(
            out, target, model,
            alpha=config.alpha * sparsity_factor(state.step, config),
            aux_coef=config.aux_coef))
    loss = sum(terms.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    active, fired = _fired(state, out)
    fired, center, n = comm.reduce_step(state.params(), fired, y)
    if model.activation.unit_norm_decoder and not out.decoder_grad_projected:
        model.remove_parallel_grad_()
    clip_gradients(state.params(), opt, config.max_grad_norm)
    lr = config.learning_rate * lr_factor(state.step, config)
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    opt.step()
    if model.activation.unit_norm_decoder:
        model.normalize_decoder_()
    model.activation.project_(model)
    _track(state, out, target, y, terms, loss, (active, fired, center, n))


def _step_noise(state: TrainState, x: torch.Tensor, comm: Local) -> torch.Tensor:
    """This rank's rows of the step's standard Gaussian noise, drawn on the
    device for the global batch from a seed of the data seed and the step (so
    that a resumed or data-parallel run draws the same noise as one process)."""
    seed = state.data_gen.initial_seed() * 2**24 + state.step + 1
    gen = torch.Generator(device=x.device).manual_seed(seed % 2**63)
    n = getattr(comm, "global_rows", x.shape[0])
    noise = torch.randn((n, x.shape[1]), generator=gen, device=x.device, dtype=x.dtype)
    lo = n * comm.rank // comm.world_size
    return noise[lo:lo + x.shape[0]]


@torch.no_grad()
def clip_gradients(params: list[torch.Tensor], opt: torch.optim.Optimizer,
                   max_norm: float | None) -> None:
    """Scale the gradients to a global norm of at most ``max_norm``.

    A fused Adam divides the gradients by its ``grad_scale`` inside its one
    pass over them (the contract `torch.amp.GradScaler` uses), so the clip
    costs one pass (the norm) instead of two (the norm, then the scaling). Other
    optimizers get `torch.nn.utils.clip_grads_with_norm_`. Both use
    `torch.nn.utils.clip_grad_norm_`'s coefficient ``max_norm / (norm + 1e-6)``.
    """
    fused = bool(opt.defaults.get("fused"))
    if fused:
        opt.grad_scale = None
    if not max_norm:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norm = torch.nn.utils.get_total_norm(grads)
    if not fused:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return
    opt.grad_scale = torch.clamp((norm.float() + 1e-6) / max_norm, min=1.0)
    if getattr(opt, "found_inf", None) is None:
        opt.found_inf = torch.zeros((), device=norm.device)


@torch.no_grad()
def _fired(state: TrainState, out: TrainOutput
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Active codes of the batch and the latents that fired on it."""
    if out.sparse:
        active = out.vals > 0
        fired = torch.zeros_like(state.since_fired).index_add_(
            0, out.idx.reshape(-1), active.reshape(-1).long()) > 0
    else:
        active = out.codes > 0
        fired = active.any(0)
    return active, fired


@torch.no_grad()
def _track(state: TrainState, out: TrainOutput, target: torch.Tensor,
           y: torch.Tensor, terms: dict, loss: torch.Tensor, stats: tuple) -> None:
    """Dead-latent counters and metric sums, all on the device (no sync).

    ``stats`` holds the active codes, the latents fired on the global batch,
    the mean of its targets ``y`` and its number of rows; ``target`` is what
    the codes reconstruct (``y`` less a transcoder's skip term).
    """
    active, fired, center, n = stats
    state.since_fired = torch.where(fired, 0, state.since_fired + n)
    err = target.detach().float() - out.x_hat.detach().float()
    dev = y.float() - center
    sums = {"loss": loss, **terms, "sse": (err * err).sum(),
            "sst": (dev * dev).sum(), "nnz": active.sum()}
    for name, val in sums.items():
        val = val.detach().double()
        state.acc[name] = state.acc[name] + val if name in state.acc else val
    state.step += 1
    state.samples += n
    state.acc_steps += 1
    state.acc_samples += n


# --------------------------------------------------------------------- logging
def _log(state: TrainState, config: TrainConfig, comm: Local) -> dict:
    """Turn the metric sums into a history entry (one host synchronisation)."""
    acc = comm.sum_dict(state.acc)
    names = list(acc)
    dead = state.since_fired >= config.dead_window
    stacked = torch.stack([acc[k] for k in names] + [dead.double().mean()])
    values = dict(zip(names + ["dead_fraction"], stacked.tolist(), strict=True))
    steps, n = max(state.acc_steps, 1), max(state.acc_samples, 1)
    entry = {"step": state.step, "samples": state.samples,
             "lr": config.learning_rate * lr_factor(state.step - 1, config)}
    entry.update({k: values[k] / steps for k in names
                  if k not in ("sse", "sst", "nnz")})
    entry["fvu"] = values["sse"] / values["sst"] if values["sst"] > 0 else float("nan")
    entry["l0"] = values["nnz"] / n
    entry["dead_fraction"] = values["dead_fraction"]
    entry["time"] = state.elapsed
    state.history.append(entry)
    state.acc, state.acc_steps, state.acc_samples = {}, 0, 0
    if not math.isfinite(entry["loss"]):
        raise _diverged(state, config, f"the mean loss of the last {steps} steps "
                        f"is {entry['loss']}")
    return entry


def _diverged(state: TrainState, config: TrainConfig, what: str
              ) -> DivergenceError:
    """The error of a diverged run, naming the parameters to lower."""
    act = state.model.activation
    name = getattr(act, "name", type(act).__name__)
    lr = f"learning_rate (now {config.learning_rate:g}"
    if name in ("jumprelu", "gated"):
        lr += f"; {name} SAEs often need a lower one than the TopK family"
    clip = (f"max_grad_norm (now {config.max_grad_norm:g})" if config.max_grad_norm
            else "set max_grad_norm (now None: no gradient clipping)")
    extra = ""
    if float(act.lr_scale) != 1.0 and any(True for _ in act.parameters()):
        extra = (f", or activation_params['lr_scale'] (now {act.lr_scale:g}: the "
                 f"learning-rate multiplier of the {name} thresholds)")
    return DivergenceError(
        f"Training diverged at step {state.step}: {what}. Lower {lr}) or "
        f"{clip}{extra}.")


def _check_finite(state: TrainState, config: TrainConfig,
                  tensors: dict[str, torch.Tensor], where: str) -> None:
    """Raise `_diverged` if a floating tensor is not finite (host syncs)."""
    bad = [k for k, v in tensors.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise _diverged(state, config, f"{', '.join(bad)} hold non-finite values "
                        f"{where}")


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
    comm: Local | None = None,
) -> TrainState:
    """Train ``state.model`` on ``source`` until ``config.max_passes`` passes.

    Parameters
    ----------
    state : TrainState
        Fresh (from initialisation) or continuing; replaced by the newest
        good checkpoint in ``config.checkpoint_dir`` when ``config.resume`` is
        ``"auto"`` (see `TrainConfig`).
    source : TensorBatches, MemmapBatches or IterableBatches
    config : TrainConfig
    callback : callable, default=None
        Called with each history entry; returning True stops training.
    comm : Local or DataParallel, default=None
        The process group's communicator (`sparsecode.sae.distributed.get_comm`);
        None trains in this process alone.

    Returns
    -------
    TrainState

    Raises
    ------
    ValueError
        Before any step, when ``checkpoint_dir`` cannot be written, holds the
        checkpoint of another run (``resume="auto"``; nothing is deleted) or
        none that is usable.
    FloatingPointError
        When training diverges: a logged loss, or the weights at a checkpoint
        or at the end, are not finite.
    """
    comm = Local() if comm is None else comm
    folder = None
    if config.checkpoint_dir:
        check_checkpoint_dir(config.checkpoint_dir, comm)
        folder = CheckpointFolder(config.checkpoint_dir, config.fingerprint)
        resume_from(folder, state, config, comm)
        if comm.is_main:
            folder.remove_temporary_files()
    comm.broadcast_module(state.model)
    opt = state.ensure_optimizer(config)
    state.model.train()
    progress = _Progress(config.verbose and comm.is_main, config.n_steps, state.step)
    try:
        with comm.attach(state.model):
            while state.pass_index < config.max_passes:
                if state.pass_position == 0:
                    state.pass_rng = state.data_gen.get_state()
                else:
                    state.data_gen.set_state(state.pass_rng)
                if _run_pass(state, source, config, opt, progress, callback, comm,
                             folder):
                    break
                if state.pass_position == 0:  # an exhausted one-shot iterator
                    break
                state.pass_index, state.pass_position = state.pass_index + 1, 0
            if state.acc_steps:
                progress.update(_log(state, config, comm))
            _check_finite(state, config, state.model.state_dict(),
                          "at the end of training")
            if folder is not None:
                _save(state, config, comm, folder)
                comm.barrier()  # the next fit may read it on any rank
        comm.broadcast_module(state.model)
    finally:
        progress.close()
        state.model.eval()
    return state


def _run_pass(state, source, config, opt, progress, callback, comm, folder
              ) -> bool:
    """One pass over ``source``; True when training must stop."""
    t0 = time.perf_counter()
    for batch in comm.batches(source, state.data_gen, start=state.pass_position):
        before = state.samples
        _train_step(state, batch, config, opt, comm)
        state.pass_position += 1
        # a quarter of the dead window seen: is a latent dead? (one host sync;
        # the dead counters, hence the answer, agree on every rank)
        quarter = max(1, config.dead_window // 4)
        if state.samples // quarter != before // quarter:
            state.aux_on = bool((state.since_fired >= config.dead_window).any())
        if state.step % config.log_every == 0:
            state.elapsed += time.perf_counter() - t0
            t0 = time.perf_counter()
            entry = _log(state, config, comm)
            progress.update(entry)
            if callback is not None and comm.any(callback(entry)):
                return True
        if (folder is not None and config.checkpoint_every
                and state.step % config.checkpoint_every == 0):
            _save(state, config, comm, folder)
    state.elapsed += time.perf_counter() - t0
    return False


def _save(state: TrainState, config: TrainConfig, comm: Local,
          folder: CheckpointFolder) -> None:
    """Checkpoint with the metric sums of all ranks, written by rank 0 alone.

    Every rank checks that the tensors are finite first (they are equal on
    all ranks): a diverged run is never checkpointed.
    """
    acc = comm.sum_dict(state.acc)
    tensors, meta = state.to_checkpoint()
    tensors.update({f"acc.{k}": v for k, v in acc.items()})
    _check_finite(state, config, tensors, f"at the checkpoint of step {state.step}")
    if comm.is_main:
        folder.write(state.step, tensors, meta)
