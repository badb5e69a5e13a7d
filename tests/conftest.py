"""Shared fixtures: a tiny synthetic corpus with features, built once per test session."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from svbench.corpus.synthetic import generate
from svbench.features import extract_shard, merge_index

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results-like folder: corpus/{train,test}.tsv, corpus/trials/synthetic.txt, features/{train,test}."""
    root = tmp_path_factory.mktemp("tiny")
    generate(root / "corpus", n_train_speakers=6, n_test_speakers=4, utts_per_speaker=4, sessions_per_speaker=2,
             min_seconds=1.0, max_seconds=1.5, n_trials=40, seed=3, progress=False)
    for split in ("train", "test"):
        for shard in range(2):
            extract_shard(root / "corpus" / f"{split}.tsv", root / "features" / split, shard, 2, progress=False)
        merge_index(root / "features" / split, 2)
    return root


from support import FAKES  # noqa: E402


@pytest.fixture
def fake_nvml(monkeypatch):
    """The fake pynvml first on sys.path, freshly imported, with no GPUs yet (tests/energy/test_sensors.py,
    tests/energy/test_counters.py)."""
    monkeypatch.syspath_prepend(str(FAKES / "fake_pynvml"))
    cached = sys.modules.pop("pynvml", None)
    module = importlib.import_module("pynvml")
    assert module.__file__.startswith(str(FAKES)), module.__file__
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    yield module
    sys.modules.pop("pynvml", None)
    if cached is not None:
        sys.modules["pynvml"] = cached


@pytest.fixture
def node(tmp_path, monkeypatch):
    """A fake node (tests/fakes/node.py): no sensors until a test adds them."""
    from fakes.node import Node

    n = Node(tmp_path, monkeypatch)
    yield n
    n.close()
