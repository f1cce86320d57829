"""Forward-hook helpers shared by extraction and splicing.

Finding a submodule by its dotted name, the activation tensor of a module
output, eval mode for the duration of a run, the device a model runs on, and
:class:`_Capture`, which records the outputs of named submodules during one
forward pass (used by :mod:`sparsecode.data.activations`), and the hooks
that replace a module's output, optionally computed from another module's
output in the same pass (used by :mod:`sparsecode.data.splice`).
"""

from __future__ import annotations

import contextlib

import torch


def _first(output):
    """The activation tensor of a module output (element 0 of a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find an activation tensor in a {type(output)} output.")


def _with_first(output, new):
    """`output` with its activation tensor replaced by `new`."""
    if isinstance(output, torch.Tensor):
        return new
    return type(output)([new, *output[1:]])


def _get_module(model, name: str) -> torch.nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise ValueError(f"model has no submodule {name!r}.") from exc


@contextlib.contextmanager
def _eval_mode(model):
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


def _model_device(model, device) -> torch.device:
    if device is not None:
        model.to(device)
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _StopForward(Exception):
    """Raised by a hook once every requested module has produced its output."""


class _Capture:
    """Context manager holding forward hooks that record module outputs."""

    def __init__(self, model, modules, stop_early):
        self.outputs: dict[str, torch.Tensor] = {}
        self._targets = [(m, _get_module(model, m)) for m in modules]
        self._stop, self._handles = stop_early, []

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._targets]

    def _hook(self, name):
        def hook(module, args, output):
            if name in self.outputs:
                raise RuntimeError(f"module {name!r} ran twice in one forward pass.")
            self.outputs[name] = _first(output)
            if self._stop and len(self.outputs) == len(self._targets):
                raise _StopForward

        return hook

    def __enter__(self):
        for name, module in self._targets:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()


# ------------------------------------------------------------------ splicing
def _source_hook(source, state):
    """Record the per-token activations of `source` for the replacement hook."""

    def hook(module, args, output):
        if state.get("busy"):  # called by replace_fn itself
            return None
        acts, mask = _first(output), state["mask"]
        if "source" in state:
            raise ValueError(
                f"source_module {source!r} ran twice before the replaced module; "
                "its activations are ambiguous."
            )
        if acts.dim() < 2 or tuple(acts.shape[:2]) != tuple(mask.shape):
            raise ValueError(
                f"source_module {source!r} returned shape {tuple(acts.shape)}, not "
                f"one row per token: expected (batch, sequence, ...) with (batch, "
                f"sequence) = {tuple(mask.shape)}."
            )
        state["source"] = acts[mask]

    return hook


def _call(replace_fn, acts, state):
    """``replace_fn(acts)`` with the hooks off: it may call the hooked modules."""
    state["busy"] = True
    try:
        return replace_fn(acts)
    finally:
        state["busy"] = False


def _replace_hook(replace_fn, state, module_name=None, source=None):
    def hook(module, args, output):
        if state.get("busy"):  # called by replace_fn itself
            return None
        acts, mask = _first(output), state["mask"]
        if tuple(acts.shape[:2]) != tuple(mask.shape):
            raise ValueError(f"module output {tuple(acts.shape)} is not per token.")
        new = acts.clone()
        if source is None:
            replaced = _call(replace_fn, acts[mask], state)
        elif "source" not in state:
            raise ValueError(
                f"source_module {source!r} had not run when module "
                f"{module_name!r} ran: the source must come before the "
                "replaced module in the forward pass."
            )
        else:
            replaced = _call(replace_fn, state.pop("source"), state)
        replaced = torch.as_tensor(replaced, dtype=acts.dtype, device=acts.device)
        if source is not None:
            want = (int(mask.sum()), *acts.shape[2:])
            if tuple(replaced.shape) != want:
                raise ValueError(
                    f"the replacement computed from source_module {source!r} has "
                    f"shape {tuple(replaced.shape)}; module {module_name!r} needs "
                    f"{want}."
                )
        new[mask] = replaced
        return _with_first(output, new)

    return hook


def _register_replacement(model, module, replace_fn, source_module, state) -> list:
    """Hooks for one spliced run: the source recorder first, then the replacer."""
    if source_module is None:
        hook = _replace_hook(replace_fn, state)
        return [_get_module(model, module).register_forward_hook(hook)]
    try:
        source = model.get_submodule(source_module)
    except AttributeError as exc:
        raise ValueError(
            f"source_module {source_module!r} is not a submodule of the model."
        ) from exc
    target = _get_module(model, module)
    hook = _replace_hook(replace_fn, state, module, source_module)
    handles = [source.register_forward_hook(_source_hook(source_module, state))]
    handles.append(target.register_forward_hook(hook))
    return handles
