"""`ConvSparseAutoencoder`: a convolutional sparse autoencoder on images.

The estimator validates images (or rows, read as images), trains a
`sparsecode.nn.conv.ConvSparseAutoencoderModule` on random crops with Adam,
and returns sparse code maps; `ConvSparseAutoencoder.detection_map` turns them
into a map whose peaks are the objects the atoms draw (e.g. nuclei).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from .._utils import one_thread
from ..base import BaseSparseEstimator, DeviceOption
from ..metrics import fvu
from ..nn.conv import ConvSparseAutoencoderModule
from ._images import _ndim, image_shape_of, nd_tensor

__all__ = ["ConvSparseAutoencoder", "image_shape_of"]

_CHUNK = 64  # images encoded at once in transform


class ConvSparseAutoencoder(BaseSparseEstimator):
    """Convolutional sparse autoencoder (after Hou et al. 2017).

    ``z = topk(relu(conv2d(x_n, W_enc) + b_enc))`` keeps the ``k`` largest
    responses of each of the ``n_components`` code maps (``k = max(1,
    round(density * h * w))`` for an ``h x w`` image); the reconstruction is
    ``conv_transpose2d(z, W_dec)`` with unit-norm atoms, in the input's units
    (``x_n`` is the input minus its per-channel training mean, over its
    training standard deviation). Training minimises the mean squared error
    on random ``crop_size`` crops with Adam.

    Input. ``X`` of shape (n, h, w) (grey images), (n, h, w, c) (channels
    last), or (n_samples, n_features) rows read as images of ``image_shape``
    (see `image_shape_of`: None reads square grey images when n_features is a
    perfect square, else one-row images). Pass one image as ``image[None]``.
    Images at ``transform`` may have another size than at ``fit`` (the
    network is convolutional); rows must have ``n_features_in_`` values.

    Parameters
    ----------
    n_components : int, default=8
        Code maps (atoms).
    kernel_size : int, default=9
        Odd side of the square atoms.
    density : float, default=0.01
        Fraction of the positions of each map kept active.
    crop_size : int, default=32
        Side of the training crops (clipped to the image size).
    image_shape : tuple, default=None
        (h, w) or (h, w, c) of rows of 2-D ``X``.
    max_iter : int, default=200
        Adam steps per ``fit`` (and per ``partial_fit``).
    batch_size : int, default=16
        Crops per step.
    learning_rate : float, default=1e-3
    random_state : int, RandomState instance or None, default=None
        Seeds the atoms and the crops (deterministic on the CPU).
    device : str, default="auto"
    verbose : bool, default=False
        Print the final training loss.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, kernel_size * kernel_size * c)
        Decoder atoms, each flattened from (kernel_size, kernel_size, c).
    image_shape_ : tuple (h, w, c)
        Shape of the training images.
    n_features_in_ : int
        ``h * w * c`` of the training images.
    n_iter_ : int
        Adam steps done.
    history_ : list of dict
        ``{"step", "loss"}`` for every step (mean squared error of the
        normalised crops).

    See Also
    --------
    sparsecode.SparseAutoencoder : the dense (fully connected) SAE family.

    References
    ----------
    L. Hou et al., "Sparse autoencoder for unsupervised nucleus detection and
    representation in histopathology images", arXiv:1704.00406 (2017);
    Pattern Recognition 86 (2019).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsecode.sae.conv import ConvSparseAutoencoder
    >>> X = np.random.default_rng(0).normal(size=(4, 16, 16)).astype(np.float32)
    >>> sae = ConvSparseAutoencoder(4, kernel_size=5, density=0.02, max_iter=5,
    ...                             random_state=0, device="cpu").fit(X)
    >>> codes = sae.transform(X)
    >>> codes.shape, int((codes != 0).sum((2, 3)).max()) <= 5
    ((4, 4, 16, 16), True)
    >>> sae.detection_map(X).shape
    (4, 16, 16)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "density": [Interval(Real, 0, 1, closed="right")],
        "crop_size": [Interval(Integral, 1, None, closed="left")],
        "image_shape": [tuple, list, None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "device": [DeviceOption()],
        "verbose": ["verbose"],
    }

    def __init__(self, n_components=8, *, kernel_size=9, density=0.01, crop_size=32,
                 image_shape=None, max_iter=200, batch_size=16, learning_rate=1e-3,
                 random_state=None, device="auto", verbose=False):
        self.n_components, self.kernel_size = n_components, kernel_size
        self.density, self.crop_size = density, crop_size
        self.image_shape, self.max_iter = image_shape, max_iter
        self.batch_size, self.learning_rate = batch_size, learning_rate
        self.random_state, self.device, self.verbose = random_state, device, verbose

    # ---------------------------------------------------------------- input
    def _images(self, X: Any, *, reset: bool) -> tuple[torch.Tensor, str, bool]:
        """``X`` as a (n, c, h, w) tensor on the fit device, the layout of X
        ("rows", "grey" or "channels") and whether X was a tensor."""
        as_tensor = isinstance(X, torch.Tensor)
        ndim = _ndim(X)
        if ndim in (3, 4):
            t = self._validate_nd(X, as_tensor, reset=reset)
            layout = "grey" if ndim == 3 else "channels"
            t = t[:, None] if ndim == 3 else t.permute(0, 3, 1, 2)
        elif ndim > 4:
            raise ValueError(f"X must have 2, 3 or 4 dimensions, got {ndim}.")
        else:  # 2-D rows (1-D and other shapes are refused by the base class)
            t, _ = self._validate_input(X, reset=reset)
            shape = (image_shape_of(t.shape[1], self.image_shape) if reset
                     else self.image_shape_)
            h, w, c = shape
            t, layout = t.reshape(-1, h, w, c).permute(0, 3, 1, 2), "rows"
        if reset:
            self.image_shape_ = (t.shape[2], t.shape[3], t.shape[1])
            self.n_features_in_ = math.prod(self.image_shape_)
        elif t.shape[1] != self.image_shape_[2]:
            raise ValueError(f"X has {t.shape[1]} channels, but "
                             f"ConvSparseAutoencoder was fitted on "
                             f"{self.image_shape_[2]}.")
        return t.contiguous(), layout, as_tensor

    def _validate_nd(self, X: Any, as_tensor: bool, *, reset: bool) -> torch.Tensor:
        t = nd_tensor(X, as_tensor)
        self._check_values(t.reshape(t.shape[0], -1))
        if reset and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return t.to(self._fit_device())

    def _k(self, h: int, w: int) -> int:
        return max(1, round(self.density * h * w))

    # ------------------------------------------------------------- training
    def fit(self, X: Any, y: Any = None) -> ConvSparseAutoencoder:
        """Train from scratch for ``max_iter`` Adam steps on random crops of X.

        Parameters
        ----------
        X : array-like or torch.Tensor
            (n, h, w), (n, h, w, c) images or (n_samples, n_features) rows.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        return self._train(X, reset=True)

    def partial_fit(self, X: Any, y: Any = None) -> ConvSparseAutoencoder:
        """``max_iter`` more Adam steps on crops of X (a fresh optimiser; the
        first call initialises from X like `fit`).

        Returns
        -------
        self
        """
        return self._train(X, reset=not hasattr(self, "_module"))

    def _train(self, X: Any, *, reset: bool) -> ConvSparseAutoencoder:
        if reset:
            self._validate_params()
            if self.kernel_size % 2 != 1:
                raise ValueError(f"kernel_size must be odd, got {self.kernel_size}.")
            self._setup_device()
        x, _, _ = self._images(X, reset=reset)
        seeds = check_random_state(self.random_state).randint(2**31 - 1, size=2)
        if reset:
            self._module = self._build(x, int(seeds[0]))
            self.history_, self.n_iter_ = [], 0
        self._module.to(self._device, dtype=x.dtype)
        with one_thread(self._device):
            losses = self._steps(x.to(self._module.W_dec.dtype), int(seeds[1]))
        start = self.n_iter_
        self.history_ += [{"step": start + i + 1, "loss": float(v)}
                          for i, v in enumerate(losses.tolist())]
        self.n_iter_ = start + len(losses)
        self.components_ = self._atoms()
        if self.verbose:
            print(f"ConvSparseAutoencoder: step {self.n_iter_}, "
                  f"loss {self.history_[-1]['loss']:.4g}")
        return self

    def _build(self, x: torch.Tensor, seed: int) -> ConvSparseAutoencoderModule:
        c = x.shape[1]
        module = ConvSparseAutoencoderModule(c, self.n_components, self.kernel_size,
                                             dtype=x.dtype, device=x.device)
        module.reset_parameters_(torch.Generator().manual_seed(seed))
        with torch.no_grad():
            module.b_dec.copy_(x.mean((0, 2, 3)))
            std = (x - module.b_dec[:, None, None]).square().mean().sqrt()
            module.scale.fill_(float(std) if float(std) > 0 else 1.0)
        return module

    def _crop_index(self, x: torch.Tensor, seed: int):
        """Image, row and column indices of every crop of every step (drawn
        once, on the CPU, then moved to the device)."""
        n, _, H, W = x.shape
        ch, cw = min(self.crop_size, H), min(self.crop_size, W)
        gen = torch.Generator().manual_seed(seed)
        size = (self.max_iter, self.batch_size)
        img = torch.randint(n, size, generator=gen)
        r0 = torch.randint(H - ch + 1, size, generator=gen)
        c0 = torch.randint(W - cw + 1, size, generator=gen)
        rows = r0[..., None] + torch.arange(ch)  # (steps, B, ch)
        cols = c0[..., None] + torch.arange(cw)
        return [t.to(x.device) for t in (img, rows, cols)], (ch, cw)

    def _steps(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """``max_iter`` Adam steps; the losses stay on the device until the end."""
        model = self._module.train()
        (img, rows, cols), (ch, cw) = self._crop_index(x, seed)
        k = self._k(ch, cw)
        opt = torch.optim.Adam([model.W_enc, model.W_dec, model.b_enc],
                               lr=self.learning_rate)
        losses = torch.empty(self.max_iter, dtype=x.dtype, device=x.device)
        scale = model.scale
        for step in range(self.max_iter):
            # (B, ch, cw, C) by advanced indexing, then channels first
            crops = x[img[step][:, None, None], :, rows[step][:, :, None],
                      cols[step][:, None, :]].permute(0, 3, 1, 2)
            x_hat, _ = model(crops, k)
            loss = ((x_hat - crops) / scale).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.normalize_decoder_()
            losses[step] = loss.detach()
        model.eval()
        return losses.cpu()

    def _resume_state(self) -> dict[str, np.ndarray]:
        """The module's weights and buffers, for `sparsecode.save`."""
        return {k: v.detach().cpu().numpy()
                for k, v in self._module.state_dict().items()}

    def _restore_resume_state(self, state: dict, device: torch.device) -> None:
        """Rebuild the module from `_resume_state` (`sparsecode.load`)."""
        self.image_shape_ = tuple(int(v) for v in self.image_shape_)
        weights = {k: torch.as_tensor(v) for k, v in state.items()}
        module = ConvSparseAutoencoderModule(
            self.image_shape_[2], self.n_components, self.kernel_size,
            dtype=weights["W_dec"].dtype, device=device)
        module.load_state_dict(weights)
        self._module = module.eval()

    def _atoms(self) -> np.ndarray:
        W = self._module.W_dec.detach().permute(0, 2, 3, 1)  # (M, k, k, C)
        return W.reshape(W.shape[0], -1).cpu().numpy().copy()

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        model, k = self._module, self._k(x.shape[2], x.shape[3])
        dtype = model.W_dec.dtype
        return torch.cat([model.encode(x[lo:lo + _CHUNK].to(dtype), k)
                          for lo in range(0, x.shape[0], _CHUNK)]).to(x.dtype)

    def _out(self, t: torch.Tensor, as_tensor: bool, like: Any) -> Any:
        t = self._check_output(t, "transform")
        return self._to_output(t, as_tensor, like if as_tensor else None)

    def transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Sparse code maps of X.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images or rows, as in `fit`.

        Returns
        -------
        codes : ndarray of shape (n, n_components, h, w)
            For 2-D X, flattened to (n_samples, n_components * h * w) (map by
            map, each row-major). A tensor on X's device when X is a tensor.
        """
        self._check_fitted()
        x, layout, as_tensor = self._images(X, reset=False)
        z = self._codes(x)
        return self._out(z.flatten(1) if layout == "rows" else z, as_tensor, X)

    def detection_map(self, X: Any) -> np.ndarray | torch.Tensor:
        """Energy the sparse codes paint at each pixel, shape (n, h, w).

        The code maps decoded with the squared atoms, summed over channels:
        its peaks are the centres of the objects the atoms draw (their
        positions do not depend on where inside its kernel an atom sits).

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images or rows, as in `fit` (rows give (n, h, w) of `image_shape_`).

        Returns
        -------
        ndarray of shape (n, h, w)
        """
        self._check_fitted()
        x, _, as_tensor = self._images(X, reset=False)
        z = self._codes(x).to(self._module.W_dec.dtype)
        with torch.no_grad():
            det = self._module.detection(z).to(x.dtype)
        return self._out(det, as_tensor, X)

    def inverse_transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Images decoded from code maps.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Codes as `transform` returns them: (n, n_components, h, w), or
            2-D (n_samples, n_components * h * w) for images of `image_shape_`.

        Returns
        -------
        ndarray
            (n, h, w) or (n, h, w, c) images, or 2-D rows for 2-D codes.
        """
        self._check_fitted()
        as_tensor = isinstance(X, torch.Tensor)
        h, w, c = self.image_shape_
        ndim = _ndim(X)
        if ndim == 4:
            z = self._validate_nd(X, as_tensor, reset=False)
            if z.shape[1] != self.n_components:
                raise ValueError(f"codes have {z.shape[1]} maps, expected "
                                 f"{self.n_components}.")
        else:
            z = self._check_codes(X, self._n_features_out)
            z = z.reshape(-1, self.n_components, h, w)
        with torch.no_grad():
            x = self._module.decode(z.to(self._module.W_dec.dtype)).to(z.dtype)
        x = x.permute(0, 2, 3, 1)
        if ndim != 4:
            x = x.reshape(x.shape[0], -1)
        elif c == 1:
            x = x[..., 0]
        return self._out(x.contiguous(), as_tensor, X)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the fraction of variance unexplained (`sparsecode.metrics.fvu`,
        pixels as samples, channels as features; 0 is perfect).

        Returns
        -------
        float
        """
        self._check_fitted()
        x, _, _ = self._images(X, reset=False)
        z = self._codes(x).to(self._module.W_dec.dtype)
        with torch.no_grad():
            x_hat = self._module.decode(z).to(x.dtype)
        c = x.shape[1]  # pixels as samples, channels as features
        return -fvu(x.permute(0, 2, 3, 1).reshape(-1, c),
                    x_hat.permute(0, 2, 3, 1).reshape(-1, c))

    @property
    def _n_features_out(self) -> int:
        h, w, _ = self.image_shape_
        return self.n_components * h * w

    def _memory_needed(self, n_samples: int, n_features: int):
        return None
