"""Registration of the masked shallow ReLU trainer (arXiv:2112.02668) and its case schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bounds.ntk import data_params

from ..data import data_schema, make_data
from ..schema import Spec, positive_float, positive_int, unit_interval
from . import Trainer, register
from .blocked_kernels import BLOCK_BYTES
from .masked_shallow import BATCH_ROWS, SCALINGS, independent_repetitions, train
from .outputs import grid_run

SCHEMA = {
    "data": data_schema(n=16, d=8, max_n=100_000),
    "model": {
        "m": positive_int(1000, maximum=10_000_000),
        "kappa": positive_float(1.0),
        "scaling": Spec(str, "inverted", choices=SCALINGS, omit_default=True),
    },
    "training": {
        "eta": positive_float(0.1),
        "rounds": positive_int(200, maximum=1_000_000),
        "dtype": Spec(str, "float64", choices=("float64", "float32")),
        "monitor_every": Spec(
            int,
            0,
            lambda v: v >= 0,
            "integer >= 0 (0: about 50 sampled rounds)",
            omit_default=True,
        ),
    },
    "masking": {
        "xi": unit_interval(1.0),
        "p": positive_int(1, maximum=4096),
        "tau": positive_int(1, maximum=10_000),
        "scheme": Spec(str, "bernoulli", choices=("bernoulli", "partition")),
    },
}


run = grid_run(
    train,
    SCHEMA,
    ("model", "training", "masking"),
    draws="both",
    doc="Train all repetitions of one point; ``variant`` is for mutation testing only.",
)


def memory_bytes(params: Mapping[str, Any], reps: int) -> float:
    """Peak memory: weights (x4 copies), the selected copies (x2), the boolean activity
    patterns of the full network and of a batch of copies, the cache-sized blocks, and the
    kernel eigenvalues' float64 pre-activations and patterns of one repetition (x2), one
    surrogate's rows of them and the n x n Gram matrices."""
    n, d, m, p = params["n"], params["d"], params["m"], params["p"]
    keep = 1.0 if params["scheme"] == "partition" else params["xi"] * p
    selected = reps * m * keep
    activity = n * (reps * m + max(m, BATCH_ROWS))  # bool: one byte each
    kernels = 8.0 * n * m * (2 + params["xi"]) + n * m + 24.0 * n * n
    return 8.0 * (4 * reps * m * d + 2 * selected * d) + activity + 4 * BLOCK_BYTES + kernels


#: the masking parameters that decide whether the fused rounds train a point
MASK_KEYS = ("tau", "p", "scheme", "xi")


def repetitions_apart(params: Mapping[str, Any], X: np.ndarray) -> bool:
    """Whether the point's repetitions may be trained as separate tasks, bit for bit the same
    (:func:`~verify.trainers.masked_shallow.independent_repetitions`)."""
    tau, p, scheme, xi = (params.get(k, SCHEMA["masking"][k].default) for k in MASK_KEYS)
    keep = 1.0 / p if scheme == "partition" else xi
    return independent_repetitions(*X.shape, tau, p, scheme, keep)



def derive(params: dict[str, Any]) -> dict[str, Any]:
    """IST keeps each neuron in exactly one of p groups: its keep probability is 1/p."""
    if params["scheme"] == "partition":
        params["xi"] = 1.0 / params["p"]
    return params


MASKED_SHALLOW = register(
    Trainer(
        name="masked_shallow",
        description="one-hidden-layer ReLU net trained on random masked surrogates (arXiv:2112.02668)",
        schema=SCHEMA,
        make_data=make_data,
        data_params=data_params,
        run=run,
        memory_bytes=memory_bytes,
        grid_sections=("model", "training", "masking"),
        derive=derive,
        init_keys=("m", "kappa"),
        measured_params=("lambda_min_H0", "masked_ntk_min"),
        measured_max=("max_movement",),
        independent_repetitions=repetitions_apart,
    )
)
