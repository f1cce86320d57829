"""scikit-learn's estimator checks on every sparsecode estimator.

Expected failures are listed in one place, `EXPECTED_FAILED_CHECKS`, each with
its reason.
"""

import functools

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    estimator_checks_generator,
    parametrize_with_checks,
)

from sparsecode import (
    ConvSparseAutoencoder,
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    PatchFeatures,
    SparseAutoencoder,
    SparseCoder,
    Transcoder,
    UnmixingAutoencoder,
    VolumePatchFeatures,
)
from sparsecode.nn import ACTIVATIONS
from sparsecode.words import SPINE, SparseOvercompleteVectors

ESTIMATORS = [
    # transform_algorithm="lasso_lars" so that fit_transform and transform solve
    # the same problem (sklearn tests its own DictionaryLearning the same way)
    DictionaryLearning(n_components=3, max_iter=20, transform_algorithm="lasso_lars",
                       random_state=0, device="cpu"),
    DictionaryLearning(n_components=3, max_iter=20, fit_algorithm="fista",
                       transform_algorithm="lasso_lars", random_state=0, device="cpu"),
    MiniBatchDictionaryLearning(n_components=3, max_iter=3, batch_size=8,
                                random_state=0, device="cpu"),
    MiniBatchDictionaryLearning(n_components=3, max_iter=3, batch_size=8,
                                transform_algorithm="threshold", positive_code=True,
                                fit_algorithm="cd",
                                random_state=0, device="cpu"),
    # one SparseAutoencoder per registered activation, tiny and quick
    *[SparseAutoencoder(n_components=6, activation=name, max_iter=2,
                        batch_size=16, log_every=2, random_state=0, device="cpu")
      for name in sorted(ACTIVATIONS)],
    # transcoders: codes of X reconstructing y (with and without a skip term)
    Transcoder(n_components=6, max_iter=2, batch_size=16, log_every=2,
               random_state=0, device="cpu"),
    Transcoder(n_components=6, activation="relu", skip_connection=True, max_iter=2,
               batch_size=16, log_every=2, random_state=0, device="cpu"),
    # word-vector estimators (Faruqui et al. 2015; SPINE), tiny and quick
    SparseOvercompleteVectors(n_components=6, max_iter=3, batch_size=16,
                              random_state=0, device="cpu"),
    SPINE(n_components=6, max_iter=2, batch_size=16, random_state=0, device="cpu"),
    # convolutional SAE: rows read as square (or one-row) grey images
    ConvSparseAutoencoder(n_components=3, kernel_size=3, max_iter=3, batch_size=4,
                          random_state=0, device="cpu"),
    # patch features: a tiny SAE on (1, 2) patches (rows read as one-row images,
    # the checks' data having non-square widths)
    PatchFeatures(SparseAutoencoder(6, k=2, max_iter=2, batch_size=16, log_every=2,
                                    random_state=0, device="cpu"),
                  patch_size=(1, 2), n_patches=200, random_state=0),
    UnmixingAutoencoder(3, max_iter=2, batch_size=16, log_every=2, random_state=0,
                        device="cpu"),
    # rows are volumes of shape (1, 1, n_features) without a mask
    VolumePatchFeatures(n_components=6, k=2, n_blocks=2, max_iter=2, device="cpu"),
]

EXPECTED_FAILED_CHECKS: dict = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# SparseCoder's dictionary fixes n_features, so each check gets a dictionary as
# wide as the data that check uses: the widths scikit-learn uses to test its own
# SparseCoder (read from its test table, so they follow the checks' data).
def _sparse_coder_widths():
    from sklearn.decomposition import SparseCoder as SkSparseCoder
    from sklearn.utils._test_common.instance_generator import (
        PER_ESTIMATOR_CHECK_PARAMS,
    )

    table = PER_ESTIMATOR_CHECK_PARAMS[SkSparseCoder]
    return {name: np.shape(p["dictionary"])[1] for name, p in table.items()}


def _check_name(check):
    return check.func.__name__ if isinstance(check, functools.partial) else (
        check.__name__
    )


def _sparse_coder_cases():
    base = SparseCoder(
        np.random.RandomState(0).normal(size=(5, 3)),
        transform_algorithm="lasso_lars", device="cpu",
    )
    widths = _sparse_coder_widths()
    for _, check in estimator_checks_generator(base, legacy=True, mark=None):
        name = _check_name(check)
        width = widths.get(name, 3)
        atoms = np.random.RandomState(0).normal(size=(5, width))
        if name == "check_transformer_preserve_dtypes":
            atoms = atoms.astype(np.float32)
        yield pytest.param(clone(base).set_params(dictionary=atoms), check, id=name)


@pytest.mark.parametrize("estimator, check", list(_sparse_coder_cases()))
def test_sparse_coder_sklearn_compatible(estimator, check):
    check(estimator)
