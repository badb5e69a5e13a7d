"""What is trained: the backbone and its margin head as one module, in the precision the device allows."""

from __future__ import annotations

import logging

import torch

from svbench.models import AAMSoftmax

log = logging.getLogger("svbench.training")


def amp_mode(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU supports it, else fp16; None (full precision) on CPU or off."""
    if amp == "off" or device.type != "cuda":
        if amp not in ("off", "auto"):
            log.warning("amp %s requested on %s: mixed precision is only used on CUDA, training in float32", amp,
                        device)
        return None
    if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if amp == "bf16":
        log.warning("bf16 is not supported on %s: using fp16 with a gradient scaler", device)
    return torch.float16


class TrainingModel(torch.nn.Module):
    """Backbone + margin head as one module, so DDP synchronises both; the head runs in float32."""

    def __init__(self, backbone: torch.nn.Module, head: AAMSoftmax, amp_dtype: torch.dtype | None) -> None:
        super().__init__()
        self.backbone, self.head, self.amp_dtype = backbone, head, amp_dtype

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The head's logits (margin applied to the target class) of a batch of crops."""
        enabled = self.amp_dtype is not None
        with torch.autocast(feats.device.type, dtype=self.amp_dtype or torch.float32, enabled=enabled):
            embeddings = self.backbone(feats)
        return self.head(embeddings.float(), labels)


def grad_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 and float32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
