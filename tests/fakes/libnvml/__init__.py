"""The C fake of libnvidia-ml.so.1 (fake_nvml.c), built once with the system C compiler, for the real pynvml.

The real nvidia-ml-py loads NVML with ``ctypes.CDLL("libnvidia-ml.so.1")`` on Linux (``_LoadNvmlLibrary``):
a bare name, so the dynamic loader looks in ``LD_LIBRARY_PATH`` before ``ld.so.cache`` and the system
folders. :func:`build` names the fake exactly that in a folder of its own; :func:`env` puts the folder
first on ``LD_LIBRARY_PATH`` for a *subprocess* (the loader reads the variable when a process starts, so
setting it inside a running Python changes nothing for dlopen), and takes any fake ``pynvml.py`` off
``PYTHONPATH`` so that the venv's real binding is the one imported.

A machine with a real GPU loses nothing: the fake wins only in the processes given :func:`env`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("fake_nvml.c")
SONAME = "libnvidia-ml.so.1"  # what pynvml dlopens on Linux


def compiler() -> str | None:
    """``$CC``, else the first of cc, gcc, clang on PATH; None when there is none."""
    for name in filter(None, (os.environ.get("CC"), "cc", "gcc", "clang")):
        path = shutil.which(name)
        if path:
            return path
    return None


def build(cache: Path | None = None) -> Path:
    """The folder holding the built ``libnvidia-ml.so.1``; built only when the source changed.

    The folder is named by the source's hash, and the library renamed into place when complete, so
    concurrent test processes never load a half-written file. Skips the test without a C compiler.
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("the fake NVML is found through LD_LIBRARY_PATH, as pynvml loads libnvidia-ml.so.1 on Linux")
    cc = compiler()
    if cc is None:
        why = "no C compiler (cc, gcc, clang or $CC) to build the fake libnvidia-ml.so.1"
        if os.environ.get("SVBENCH_REQUIRE_CC"):  # CI installs one: there the test must run, not skip
            pytest.fail(why)
        pytest.skip(why)
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + cc.encode()).hexdigest()[:16]
    folder = (cache or Path(tempfile.gettempdir()) / f"svbench-fake-nvml-{os.getuid()}") / digest
    lib = folder / SONAME
    if lib.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{SONAME}.{os.getpid()}"
    cmd = [cc, "-shared", "-fPIC", "-O1", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra",
           "-Werror", f"-Wl,-soname,{SONAME}", "-o", str(partial), str(SOURCE)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"building the fake NVML failed ({' '.join(cmd)}):\n{done.stderr}")
    os.replace(partial, lib)
    return folder


def write_script(path: Path, gpus: list[dict], **global_keys: object) -> Path:
    """A FAKE_NVML_SCRIPT: global keys, then one ``[gpu]`` section per dict (keys as in fake_nvml.c)."""
    lines = [f"{k}={v}" for k, v in global_keys.items()]
    for gpu in gpus:
        lines.append("[gpu]")
        lines += [f"{k}={v}" for k, v in gpu.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def env(lib_dir: Path, script: Path, log: Path | None = None, base: dict | None = None) -> dict[str, str]:
    """The environment of a subprocess whose real pynvml must load the fake: the library folder first
    on LD_LIBRARY_PATH, the script, and no PYTHONPATH entry holding a fake ``pynvml.py``."""
    out = dict(os.environ if base is None else base)
    out["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, (str(lib_dir), out.get("LD_LIBRARY_PATH"))))
    out["FAKE_NVML_SCRIPT"] = str(script)
    if log is not None:
        out["FAKE_NVML_LOG"] = str(log)
    keep = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and not (Path(p) / "pynvml.py").exists()]
    if keep:
        out["PYTHONPATH"] = os.pathsep.join(keep)
    else:
        out.pop("PYTHONPATH", None)
    return out
