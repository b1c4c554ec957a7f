"""numpy's BLAS on one thread in the sidecar's process.

The only BLAS work here is the skin colour model's covariances: 3×3 matrices over some
thousands of pixels (`np.cov`). For them OpenBLAS starts a thread of its own per core,
which then spins (sched_yield) waiting for more, on the cores the analysis and the
final's tiles need: 80-120 ms of CPU per skin mask. On one thread the bits are the
same. threadpoolctl finds numpy's OpenBLAS, whatever its build calls it; torch's own
threads (the diffusion engine) are not OpenBLAS's and are left alone.
"""

from __future__ import annotations


def blas_on_one_thread() -> int:
    """Every loaded OpenBLAS on one thread; how many there were. Imported here, not at
    the top, so that a command that runs no engine (token, service) does not load numpy."""
    import numpy  # noqa: F401  loaded first, so that its BLAS is there to be found
    from threadpoolctl import ThreadpoolController

    openblas = ThreadpoolController().select(internal_api="openblas")
    openblas.limit(limits=1)
    return len(openblas.lib_controllers)
