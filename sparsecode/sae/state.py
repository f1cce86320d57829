"""`TrainState`: everything a SAE training run needs to continue.

The module, the Adam optimizer (or its state dict), the step/sample/pass
counters, the data-order RNG, the dead-latent counters and the metric sums of
the current logging window. It pickles with all tensors on the CPU and turns
into (and back from) the tensors + JSON metadata of an atomic checkpoint
(`sparsecode.sae._checkpoint`), which it checks against its own module and
optimizer before loading it (`TrainState.check_checkpoint`).
"""

from __future__ import annotations

import copy

import torch

from .._utils import fused_optimizer
from ..nn import SparseAutoencoderModule
from .config import TrainConfig

__all__ = ["TrainState"]

#: metadata of a checkpoint, with the JSON types of their values
_META = {"step": int, "samples": int, "pass_index": int, "pass_position": int,
         "acc_steps": int, "acc_samples": int, "history": list,
         "elapsed": (int, float), "param_groups": list, "aux_on": bool}
_ADAM = ("step", "exp_avg", "exp_avg_sq")  # Adam's state of each parameter


class TrainState:
    """Everything a run needs to continue: module, optimizer, counters, RNG.

    Pickles with all tensors on the CPU (the optimizer as its state dict).

    Parameters
    ----------
    model : SparseAutoencoderModule
    seed : int
        Seeds the data-order generator ``data_gen``.

    Examples
    --------
    >>> import pickle
    >>> state = TrainState(SparseAutoencoderModule(4, 8, "topk", {"k": 2}), seed=0)
    >>> _ = state.ensure_optimizer(TrainConfig(learning_rate=1e-3))
    >>> state.samples = 64
    >>> back = pickle.loads(pickle.dumps(state))
    >>> back.samples, back.optimizer is None, back.opt_state is not None
    (64, True, True)
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
        self.aux_on = False  # whether AuxK runs (see training._run_pass)
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
        meta = {k: getattr(self, k) for k in _META if k not in ("step", "param_groups")}
        return tensors, {**meta, "param_groups": groups}

    def check_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Raise ``ValueError`` saying what in a checkpoint does not fit this state.

        Checks the metadata, that every module tensor is there with the
        module's shape and dtype, that the optimizer state is complete and
        shaped like the parameters, the counters and RNG states, and that
        every floating tensor is finite.

        Parameters
        ----------
        tensors : dict of str to Tensor
            As written by `to_checkpoint` (with the metric sums).
        meta : dict
            Its metadata, with ``"step"``.
        """
        for key, kind in _META.items():
            val = meta.get(key)
            if not isinstance(val, kind) or (kind is not bool and (
                    isinstance(val, bool) or isinstance(val, int) and val < 0)):
                raise ValueError(f"its metadata has no valid {key!r} ({val!r})")
        model = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        unknown = sorted(k for k in tensors
                         if k.startswith("model.") and k not in model)
        if unknown:
            raise ValueError(f"{unknown} are not tensors of this model")
        for key, ref in model.items():
            _check_like(tensors, key, ref)
        ours = self.param_groups()
        theirs = meta["param_groups"]
        if len(theirs) != len(ours) or any(
                not isinstance(g, dict) or len(g.get("params", ())) != len(o["params"])
                for g, o in zip(theirs, ours, strict=False)):
            raise ValueError("its optimizer parameter groups do not fit this model")
        params = [p for g in ours for p in g["params"]]
        adam: dict[int, set] = {}
        for key in tensors:
            if key.startswith("opt."):
                _, i, name = (key.split(".", 2) + ["", ""])[:3]
                if not i.isdigit() or int(i) >= len(params) or name not in _ADAM:
                    raise ValueError(f"{key} is not Adam state of this model")
                adam.setdefault(int(i), set()).add(name)
        if meta["step"] > 0 and not adam:
            raise ValueError("it holds no optimizer state")
        for i, names in sorted(adam.items()):
            lacking = [f"opt.{i}.{n}" for n in _ADAM if n not in names]
            if lacking:
                raise ValueError(f"its optimizer state lacks {lacking}")
            for name in ("exp_avg", "exp_avg_sq"):
                _check_like(tensors, f"opt.{i}.{name}", params[i].detach())
            if tensors[f"opt.{i}.step"].numel() != 1:
                raise ValueError(f"opt.{i}.step is not a scalar")
            if (tensors[f"opt.{i}.exp_avg_sq"] < 0).any():
                raise ValueError(f"opt.{i}.exp_avg_sq has negative values")
        _check_like(tensors, "since_fired", self.since_fired)
        if (tensors["since_fired"] < 0).any():
            raise ValueError("since_fired has negative values")
        for key in ("rng.data", "rng.pass"):
            _check_like(tensors, key, self.pass_rng)
        for key, t in tensors.items():
            if key.startswith("acc.") and t.shape != ():
                raise ValueError(f"{key} is not a scalar")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{key} holds non-finite values (NaN or inf)")

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
        for k in _META:
            if k not in ("step", "param_groups"):
                setattr(self, k, meta[k])


def _check_like(tensors: dict[str, torch.Tensor], key: str,
                ref: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``tensors[key]`` has ``ref``'s shape and dtype."""
    if key not in tensors:
        raise ValueError(f"it lacks the tensor {key}")
    t = tensors[key]
    if t.dtype != ref.dtype:
        raise ValueError(f"{key} is {t.dtype}, not {ref.dtype} as in this model")
    if t.shape != ref.shape:
        raise ValueError(f"{key} has shape {list(t.shape)}, not {list(ref.shape)} "
                         "as in this model")


def _to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
