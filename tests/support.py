"""Where the tests find the repository, its benchmarks and the shared fakes (tests/fakes), from any test folder."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FAKES = TESTS / "fakes"
BENCH = REPO / "bench"
BIN = Path(sys.executable).parent  # the venv's scripts: svbench, snakemake, torchrun


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the venv's snakemake with its scripts first on PATH (rules call ``svbench``)."""
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def kill_at_checkpoint(cmd: list[str], checkpoint: Path, ready, signum: int, timeout: float = 120) -> int:
    """Start ``cmd``, wait until ``checkpoint`` loads and ``ready(checkpoint dict)`` holds, send ``signum``; the
    exit status (a negative signal number when killed by it)."""
    import time

    import torch

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the job ended before it could be killed"
            if checkpoint.exists():
                try:
                    ckpt = torch.load(checkpoint, weights_only=False)
                except Exception:  # caught between write and rename: retry
                    ckpt = None
                if ckpt and ready(ckpt):
                    break
            time.sleep(0.05)
        os.kill(proc.pid, signum)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _ddp_setup():
    from svbench.models import ArchSpec
    from svbench.training import Recipe

    spec = ArchSpec(name="tiny", block="basic", stages=(1, 1, 1, 1), width=4, embedding=32)
    # 24 utterances, global batch 8 over 2 processes (4 each): 3 steps per epoch
    recipe = Recipe(epochs=3, batch_size=8, crop_frames=40, lr=0.1, final_lr=0.01, warmup_epochs=1,
                    margin=0.2, margin_start_epoch=1, margin_end_epoch=2, threads=1, processes=2, device="cpu")
    return spec, recipe


DDP_SPEC, DDP_RECIPE = _ddp_setup()  # a tiny two-process training (tests/training/test_ddp.py, tests/energy)


def ddp_worker(rank: int, world: int, port: int, corpus: Path, out: Path, stop_after: int | None,
               recipe: object = None, init: Path | None = None) -> None:
    """One rank of the tiny DDP training (torch.multiprocessing spawns it: it must live in an importable module);
    with ``recipe`` and ``init``, a fine-tuning of that model."""
    from svbench.training import Preempted, StopAfterSteps, train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    stop = None if stop_after is None else StopAfterSteps(stop_after)  # None: the default, stop on SIGTERM
    try:
        train(corpus / "features" / "train", corpus / "corpus" / "train.tsv", DDP_SPEC, recipe or DDP_RECIPE, out,
              seed=0, stop=stop, init=init)
    except Preempted:
        pass


def config_schema(*keys: str) -> dict:
    """The section of svbench/schemas/config.schema.yaml under ``keys`` (``config_schema("corpus")``)."""
    import copy

    from svbench import schemas

    section = copy.deepcopy(schemas.config_schema())  # a test may change what it is given
    for key in keys:
        section = section["properties"][key]
    return section


_SCHEMA_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


def assert_schema_matches(block: type, section: str) -> None:
    """The schema's ``section`` (``"corpus.synthetic"``) names the dataclass's fields; each scalar field is read from
    its own key (its default and bounds are the schema's) and its annotation is the key's type."""
    import dataclasses

    schema = config_schema(*section.split("."))
    assert set(schema["properties"]) == {spec.name for spec in dataclasses.fields(block)}, block.__name__
    for spec in dataclasses.fields(block):
        entry = schema["properties"][spec.name]
        if dataclasses.is_dataclass(getattr(block(), spec.name)):
            assert entry["default"] == {}, spec.name  # filled from the nested block's own defaults
            continue
        if spec.type.startswith("dict"):
            continue  # a free mapping (trial lists by name): parsed by its block
        assert spec.metadata["key"] == f"{section}.{spec.name}", spec.name
        kinds = spec.type.replace(" ", "").split("|")
        types = entry["type"] if isinstance(entry["type"], list) else [entry["type"]]
        assert sorted(types) == sorted([_SCHEMA_TYPES[kinds[0]]] + (["null"] if "None" in kinds else [])), spec.name
