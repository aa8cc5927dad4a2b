"""Load native libraries that carry their own copy of LLVM so they can share one process.

TensorFlow (the RLDS reader), Triton (in CUDA builds of torch; imported by torch.compile and by
transformers) and Mesa's llvmpipe (MuJoCo's headless EGL renderer) each bundle a different LLVM. By
default the one loaded second binds to the first one's symbols and the process segfaults, in whichever
order they load. Loading Triton and TensorFlow with their own symbols kept local and preferred
(RTLD_LOCAL | RTLD_DEEPBIND) lets all three coexist. `agent_stack` loads Triton this way on import and
`agent_stack.data` loads TensorFlow this way, so import `agent_stack` before torch, tensorflow or sim.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from types import ModuleType


def import_isolated(module: str) -> ModuleType:
    """Import `module`, loading the shared libraries it brings with RTLD_LOCAL | RTLD_DEEPBIND."""
    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_LOCAL | os.RTLD_DEEPBIND)
    try:
        return importlib.import_module(module)
    finally:
        sys.setdlopenflags(flags)


def isolate_triton() -> None:
    """Load Triton isolated before torch imports it (a no-op without Triton, e.g. CPU builds of torch)."""
    if "triton" in sys.modules:
        return
    try:
        import_isolated("triton")
    except ImportError:
        pass


def import_tensorflow() -> ModuleType:
    """TensorFlow, loaded isolated (after Triton, which must not see TensorFlow's LLVM either)."""
    if "tensorflow" in sys.modules:
        if sys.modules.get("tensorflow.python.pywrap_dlopen_global_flags") is not None:
            warnings.warn("tensorflow was imported before agent_stack; with MuJoCo rendering or torch.compile "
                          "in the same process this can crash. Import agent_stack first.", stacklevel=2)
        return sys.modules["tensorflow"]
    isolate_triton()
    # When this module imports, TensorFlow switches dlopen to RTLD_GLOBAL for its own libraries.
    sys.modules.setdefault("tensorflow.python.pywrap_dlopen_global_flags", None)
    return import_isolated("tensorflow")
