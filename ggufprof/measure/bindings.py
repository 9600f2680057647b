"""llama.cpp's C API: llama-cpp-python's ctypes bindings (``llama_cpp.llama_cpp``) without the rest
of the package.

``import llama_cpp`` runs the package's ``__init__``, which also imports its high-level ``Llama``
class and, through it, numpy, jinja2 and the chat formats: ~0.3 s of a worker's start-up (most of
``estimate --total``'s dry run on a small model), none of which ggufprof uses. The bindings module
itself needs only the package's directory, so the package is registered here as an empty module
whose ``__path__`` is that directory, and ``llama_cpp.llama_cpp`` is imported from it: ~0.03 s.
The libraries are still found and loaded by the bindings as llama-cpp-python loads them
(``LLAMA_CPP_LIB_PATH`` included, which ``--llama-lib`` sets before this import).

It also keeps numpy out of the processes that load llama.cpp until after its libraries are
loaded: on a CUDA build, numpy loaded first made every ``llama_model_load_from_file`` segfault
(measured on an H200; tests/test_layout.py holds the order).

The stand-in package lives only while the bindings import, so a later ``import llama_cpp`` (a
test, a notebook) gets the real package, built around these same bindings; if the package was
imported whole first, its bindings are used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def _bindings() -> types.ModuleType:
    if "llama_cpp" in sys.modules:
        return importlib.import_module("llama_cpp.llama_cpp")
    spec = importlib.util.find_spec("llama_cpp")  # locates the package without executing it
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("llama-cpp-python is not installed (pip install llama-cpp-python)")
    pkg = types.ModuleType("llama_cpp")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    sys.modules["llama_cpp"] = pkg
    try:
        return importlib.import_module("llama_cpp.llama_cpp")
    finally:  # the stand-in only while the bindings import: a later `import llama_cpp` runs the real
        # package, which finds these same bindings (one copy of the libraries) in sys.modules
        if sys.modules.get("llama_cpp") is pkg:
            del sys.modules["llama_cpp"]


L = _bindings()
