"""A multi-device rig without GPUs: two llama.cpp ``rpc-server`` processes on 127.0.0.1.

llama.cpp's RPC backend (ggml/src/ggml-rpc, tools/rpc) turns each server into an offload device that
-ngl, -ts, -sm and -ot place on like a GPU (``RPC0``, ``RPC1``; buffer types
``RPC0[127.0.0.1:PORT]``). ``make test`` builds rpc-server with the tools (scripts/build_llama_tools.sh,
-DGGML_RPC=ON); the llama-cpp-python wheel has no RPC backend, so the tests load the tools build's
libraries (LLAMA_CPP_LIB_PATH, as --llama-lib does) in the worker processes they start. The server binary
of this release is ``ggml-rpc-server`` (tools/rpc/CMakeLists.txt).

Each server reports host RAM as its free memory, so tests give -ts explicitly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .archs_suite import llama_tools_bin

SERVERS = 2
START_TIMEOUT_S = 30.0


def rpc_server_binary() -> Path:
    return llama_tools_bin() / "ggml-rpc-server"  # tools/rpc: the target and binary are ggml-rpc-server in this release


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RpcRig:
    endpoints: tuple[str, ...]  # host:port of each server, as --rpc takes them
    lib_dir: Path  # the tools build's shared libraries (with the RPC backend)

    def buffer_types(self) -> list[str]:
        """The buffer type each server's device logs (ggml_backend_rpc_buffer_type, ggml-rpc.cpp): the
        server's device index (0: one CPU each) and its endpoint."""
        return [f"RPC0[{ep}]" for ep in self.endpoints]


@pytest.fixture(scope="session")
def rpc_rig():
    """Two rpc-servers on free loopback ports, and LLAMA_CPP_LIB_PATH on the tools build for the
    session's workers; both stopped (and the variable restored) at the end."""
    binary = rpc_server_binary()
    if not binary.exists():
        pytest.skip(f"{binary} is missing: scripts/build_llama_tools.sh ggml-rpc-server (make archs) builds it")
    procs, endpoints = [], []
    try:
        for _ in range(SERVERS):
            port = _free_port()
            procs.append(subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port), "-t", "1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            endpoints.append(f"127.0.0.1:{port}")
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _listening(port):
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rpc-server on port {port} did not start (exit code {procs[-1].poll()})")
                time.sleep(0.05)
        saved = os.environ.get("LLAMA_CPP_LIB_PATH")
        os.environ["LLAMA_CPP_LIB_PATH"] = str(binary.parent)
        try:
            yield RpcRig(tuple(endpoints), binary.parent)
        finally:
            if saved is None:
                os.environ.pop("LLAMA_CPP_LIB_PATH", None)
            else:
                os.environ["LLAMA_CPP_LIB_PATH"] = saved
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
