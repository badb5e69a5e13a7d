"""The instrument: what runs beside a job and writes what it measured (sensors, the sidecar, the trace, the
monitor, the phase markers, SLURM's context). It imports nothing of svbench but errors and file I/O (and the config
schema it validates the energy config against); the accounting that reads its files afterwards (join, closure,
carbon, emissions) is :mod:`svbench.energy`.

Public names, imported on first use (a training process that marks phases loads neither the sensors nor pandas):

- ``phase(name, index)``: a context manager that marks a phase of the job (``with phase("epoch", i): ...``);
- ``run_monitored(out_dir, command, config)``: run a command measured (what ``svbench monitor`` does);
- ``EnergyConfig``, ``read_energy_config``: the energy config, checked;
- ``TraceWriter``, ``iter_trace``, ``read_trace``: the trace file.
"""

from __future__ import annotations

import importlib

_PUBLIC = {"phase": "markers", "run_monitored": "monitor", "read_energy_config": "monitor",
           "EnergyConfig": "config", "TraceWriter": "trace", "iter_trace": "trace", "read_trace": "trace"}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:  # PEP 562: the public names, each from its module when first asked for
    if name not in _PUBLIC:
        raise AttributeError(f"module 'svbench.instrument' has no attribute {name!r}")
    return getattr(importlib.import_module(f"svbench.instrument.{_PUBLIC[name]}"), name)
