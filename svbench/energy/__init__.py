"""The accounting: what is made of the instrument's files (:mod:`svbench.instrument`) after the job. The energy join
(a trace and its phase markers to ``energy.csv``, each node alone, then the job's sums), the energy closure and
totals, carbon (PUE, grid intensity, embodied) and CodeCarbon-compatible emissions.

The names the study uses (``__all__``), each imported from its module on first use.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "REST_OF_JOB": "join", "SPAN": "join", "energy_basis": "join", "node_rows": "join", "read_energy": "join",
    "total": "join", "total_rows": "join",
    "job_nodes": "node_join", "join_nodes": "node_join", "partial_nodes": "node_join",
    "Factor": "carbon", "Intensity": "carbon", "embodied_g": "carbon", "factors_from_config": "carbon",
    "gpu_count": "carbon", "rows_g": "carbon",
    "write_emissions": "emissions",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:  # PEP 562: each public name from its module when first asked for
    if name not in _PUBLIC:
        raise AttributeError(f"module 'svbench.energy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"svbench.energy.{_PUBLIC[name]}"), name)
