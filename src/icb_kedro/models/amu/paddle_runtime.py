"""The CPU runtime of an AMU fit: Paddle's device, threads and seed, glibc and BLAS settings.

:func:`configure_paddle` runs at the start of every fit (CPU device, math threads, the fused
kernels' threads, the global Paddle seed); :func:`keep_freed_memory` stops glibc from
unmapping Paddle's large attention buffers after every op; :func:`single_threaded_blas`
keeps numpy's GEMMs inside the fused layers on one thread. None of them changes a number.
"""

from __future__ import annotations

import paddle


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    Paddle allocates the [B, heads, G, G] attention tensors (~30 MB at batch 32, 160
    genes) afresh for every op; glibc serves blocks that large with mmap and unmaps them
    on free, so every op paid page faults: about a third of the CPU time was kernel time.
    Raising the mmap/trim thresholds (``mallopt``) cuts that to ~2% and changes no number.
    Process-wide and harmless elsewhere; returns False where glibc is absent.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
        return bool(
            libc.mallopt(m_mmap_threshold, 1 << 30)
            and libc.mallopt(m_trim_threshold, 1 << 30)
            and libc.mallopt(m_top_pad, 64 << 20)
        )
    except (OSError, AttributeError):
        return False


def configure_paddle(seed: int, num_threads: int, engine: str = "eager") -> None:
    """CPU device, math threads and the global Paddle seed (set at the start of every fit)."""
    keep_freed_memory()
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(max(1, int(num_threads)))
    if engine == "fused":
        from .fused import set_kernel_threads

        set_kernel_threads(num_threads)
    paddle.seed(int(seed))


def single_threaded_blas():
    """Context: BLAS (numpy's GEMMs inside the fused layers) on one thread.

    The fused layers alternate numpy GEMMs with multi-threaded numba kernels; a second BLAS
    thread pool spinning between calls competed with the kernels' threads and made a
    training step ~30% slower (measured), while the GEMMs are small enough for one core.
    The kernels' own GEMMs (numba's ``np.dot``) call SciPy's BLAS, a second library:
    threadpoolctl limits only the libraries loaded when the context opens, so it is loaded
    first (unlimited, its threads inside the kernels' threads made the feed-forward kernels
    9-50x slower, measured at 256-row blocks).
    """
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS so the limit covers it)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
