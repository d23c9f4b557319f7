"""Let freed activations be reused instead of handed back to the kernel (glibc malloc, Linux).

A segment allocates and frees the same tens of megabytes in every layer. glibc's default
heuristics return part of that to the kernel and fault it back in, zeroed, a moment later: we
counted tens of thousands of page faults per 1024-token segment of streaming, a few per cent of
its time on CPU. Fixed thresholds keep up to `TRIM_BYTES` of freed memory in the process.
"""

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20  # glibc's largest allowed value; bigger blocks (logits) still go to mmap
TRIM_BYTES = 256 << 20


def keep_freed_memory() -> bool:
    """True when the thresholds were set; elsewhere (not glibc, not Linux) nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
