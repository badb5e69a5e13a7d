"""Where a model runs and how a trained one is loaded: shared by training and inference (embedding), so
that inference does not reach into the training loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from svbench.errors import UserError

from .resnet import build
from .spec import ArchSpec


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when there is a GPU, else CPU; ``cuda`` → this process's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # one GPU per process
        return torch.device("cuda", local_rank)
    return torch.device(name)


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ArchSpec]:
    """The trained backbone (eval mode) and its spec from ``model.pt``; a damaged file is named."""
    try:
        blob = torch.load(path, map_location=device, weights_only=False)
        state, spec_dict = blob["model"], blob["spec"]
    except FileNotFoundError:
        raise UserError(f"{path}: no trained model (run the training step first)") from None
    except (RuntimeError, EOFError, KeyError, TypeError, OSError) as exc:  # truncated, not a torch file
        raise UserError(f"{path}: not a readable svbench model ({type(exc).__name__}: {exc})"[:300]) from None
    spec = ArchSpec.from_dict(spec_dict, where=str(path))
    model = build(spec).to(device)
    model.load_state_dict(state)
    return model.eval(), spec


def device_sync(device: torch.device) -> Callable[[], None] | None:
    """What a measurement window calls at its edges so that queued GPU work lands inside it: CUDA kernels run
    asynchronously, and a phase stamped before they finish would hand their energy to the next phase."""
    if device.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(device)
