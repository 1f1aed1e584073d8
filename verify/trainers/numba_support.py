"""Whether the compiled kernels can be used: numba importable and not disabled.

numba is a runtime dependency of the fused rounds (:mod:`verify.trainers.fused_kernels`,
:mod:`verify.trainers.unrolled_kernels`) and of the compiled mask expansion
(:mod:`verify.trainers.mask_draws`); where it cannot be imported, or with
``MASKVERIFY_NUMBA=0`` in the environment, :data:`AVAILABLE` is False and every trainer uses
its NumPy code (tested both ways).
"""

from __future__ import annotations

import os

try:  # pragma: no cover - exercised by whichever environment runs the tests
    if os.environ.get("MASKVERIFY_NUMBA", "1") == "0":
        raise ImportError("disabled by MASKVERIFY_NUMBA=0")
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

#: whether the compiled kernels can be used (numba importable and not disabled)
AVAILABLE = njit is not None
