"""Hypothesis strategies for property-testing bounds.

A user adding a corollary can check it in a few lines::

    from hypothesis import given
    from bounds.strategies import masked_params

    @given(masked_params())
    def test_my_corollary_is_a_contraction(params):
        ...

Requires the ``test`` extra (hypothesis).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from .ntk import data_params


@st.composite
def unit_sphere_data(
    draw: st.DrawFn,
    n: st.SearchStrategy[int] | None = None,
    d: st.SearchStrategy[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A data set ``(X, y)`` with unit-norm rows, no two parallel, labels in [-1, 1]."""
    n_ = draw(n if n is not None else st.integers(2, 12))
    d_ = draw(d if d is not None else st.integers(2, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_, d_))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.uniform(-1.0, 1.0, n_)
    return X, y


@st.composite
def masked_params(
    draw: st.DrawFn,
    scheme: str = "bernoulli",
    xi: st.SearchStrategy[float] | None = None,
    p: st.SearchStrategy[int] | None = None,
    tau: st.SearchStrategy[int] | None = None,
) -> dict[str, Any]:
    """Valid parameters of masked training, including data-derived ``lambda0`` etc.

    The step size is drawn inside the theorem's step-size condition.
    """
    X, y = draw(unit_sphere_data())
    params: dict[str, Any] = dict(data_params(X, y))
    params["scheme"] = scheme
    params["p"] = draw(p if p is not None else st.integers(1, 16))
    params["tau"] = draw(tau if tau is not None else st.integers(1, 16))
    params["xi"] = (
        1.0 / params["p"]
        if scheme == "partition"
        else draw(xi if xi is not None else st.floats(0.05, 1.0))
    )
    params["m"] = draw(st.integers(16, 100_000))
    params["kappa"] = draw(st.floats(0.01, 2.0))
    xi_eff = params["xi"]
    eta_max = xi_eff / params["lambda_max"]
    params["eta"] = draw(st.floats(1e-4, 0.999)) * eta_max
    return params
