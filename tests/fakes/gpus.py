"""A ``pynvml.py`` for a sidecar process: the fake pynvml (tests/fakes/fake_pynvml) with GPUs already added.

The sidecar imports ``pynvml`` itself, in its own process, so the GPUs cannot be added from the test:
the module written here adds them at import time, each with an energy counter that runs at ``watts``
from then on. Used by the fake node (tests/fakes/node.py) and the sidecar benchmark (bench/sidecar.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

FAKE_PYNVML = Path(__file__).resolve().parent / "fake_pynvml" / "pynvml.py"

UUID_A = "GPU-aaaaaaaa-1111-2222-3333-444444444444"
UUID_B = "GPU-bbbbbbbb-5555-6666-7777-888888888888"

_WRAPPER = """
# The fake pynvml with GPUs {uuids!r} whose energy counters run at {watts} W from import time.
import importlib.util, time
_spec = importlib.util.spec_from_file_location("_fake_pynvml", {fake!r})
_fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fake)
globals().update({{k: v for k, v in vars(_fake).items() if not k.startswith("__")}})
for _uuid in {uuids!r}:
    _fake.add_gpu(_uuid, energy_mj=5_000_000, instant_mw={watts} * 1000)
_t0 = time.monotonic()


def nvmlDeviceGetTotalEnergyConsumption(handle):
    return _fake.nvmlDeviceGetTotalEnergyConsumption(handle) + int({watts} * 1000 * (time.monotonic() - _t0))
"""


def write_fake_pynvml(folder: Path, uuids: Sequence[str], watts: int) -> Path:
    """``folder/pynvml.py`` (put ``folder`` first on the sidecar's PYTHONPATH); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pynvml.py"
    path.write_text(_WRAPPER.format(fake=str(FAKE_PYNVML), uuids=list(uuids), watts=int(watts)))
    return path
