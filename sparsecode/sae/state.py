"""`TrainState`: everything a SAE training run needs to continue.

The module, the Adam optimizer (or its state dict), the step/sample/pass
counters, the data-order RNG, the dead-latent counters and the metric sums of
the current logging window. It pickles with all tensors on the CPU and turns
into (and back from) the tensors + JSON metadata of an atomic checkpoint
(`sparsecode.sae._checkpoint`).
"""

from __future__ import annotations

import copy

import torch

from .._utils import fused_optimizer
from ..nn import SparseAutoencoderModule
from .config import TrainConfig

__all__ = ["TrainState"]


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
            self.optimizer = fused_optimizer(torch.optim.Adam, self.param_groups(),
                                             **kw)
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
