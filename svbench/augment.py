"""Waveform-level training augmentation: speed perturbation, MUSAN noise and RIR reverberation.

Features are precomputed, but these augmentations act on the waveform, so an augmented training
sample is made on the fly: read a segment of the utterance's wav, change its speed and/or add noise
or reverberation, and compute its fbank (the same `svbench.features.fbank`). Clean samples still
come from the memory-mapped feature store. As in WeSpeaker (REFERENCE §3): a sample is augmented with
probability 0.6, half of the time by reverberation and half by additive noise (noise 0–15 dB, speech
10–30 dB, music 5–15 dB SNR); speed perturbation picks 1.0, 0.9 or 1.1 uniformly and each speed is
its own class. Every random choice comes from the caller's generator, so samples stay deterministic.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from svbench.errors import UserError

SAMPLE_RATE = 16000
SPEEDS = (1.0, 0.9, 1.1)  # index k: class offset k * n_speakers
SNR_DB = {"noise": (0.0, 15.0), "speech": (10.0, 30.0), "music": (5.0, 15.0)}


def wav_files(root: Path, key: str) -> list[Path]:
    """All ``*.wav`` under ``root`` (sorted, so choices are reproducible); errors name the config key."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"config key {key}: {root} does not exist")
    files = sorted(root.rglob("*.wav"))
    if not files:
        raise UserError(f"config key {key}: no .wav files under {root}")
    return files


def read_segment(path: Path, start: int, length: int) -> np.ndarray:
    """``length`` samples from ``start`` of a 16-bit PCM mono 16 kHz wav (fewer at the end), as float32."""
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise UserError(f"{path}: expected 16-bit mono {SAMPLE_RATE} Hz PCM wav for augmentation")
        n = w.getnframes()
        w.setpos(min(max(start, 0), n))
        data = w.readframes(max(length, 0))
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    """Tile or cut to exactly ``length`` samples."""
    if len(samples) == 0:
        return np.zeros(length, np.float32)
    return np.tile(samples, -(-length // len(samples)))[:length]


def random_segment(path: Path, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample segment of a wav; short files are tiled."""
    total = wav_frames(path)
    start = int(rng.integers(0, total - length + 1)) if total > length else 0
    return _fit(read_segment(path, start, length), length)


def speed_segment(path: Path, length: int, speed: float, rng: np.random.Generator) -> np.ndarray:
    """``length`` output samples of the utterance played ``speed`` times faster (tempo and pitch, like sox)."""
    if speed == 1.0:
        return random_segment(path, length, rng)
    need = int(math.ceil(length * speed)) + 64  # a little more: resampling shortens by 1/speed
    x = random_segment(path, need, rng)
    # Read as if sampled at speed × 16 kHz, resample to 16 kHz: 0.9 → 14.4 k, 1.1 → 17.6 k (exact ratios)
    y = AF.resample(torch.from_numpy(x), orig_freq=int(round(SAMPLE_RATE * speed)), new_freq=SAMPLE_RATE)
    return _fit(y.numpy(), length)


class Augmenter:
    """Additive MUSAN noise (``musan/{noise,speech,music}/**.wav``) and RIR reverberation (``rir/**.wav``)."""

    def __init__(self, musan: Path | None, rir: Path | None, prob: float = 0.6) -> None:
        self.prob = prob
        self.noises: dict[str, list[Path]] = {}
        if musan is not None:
            wav_files(musan, "training.musan")  # exists and holds audio
            for kind in SNR_DB:
                files = sorted((Path(musan) / kind).rglob("*.wav"))
                if files:
                    self.noises[kind] = files
            if not self.noises:
                raise UserError(f"config key training.musan: {musan} has no noise/, speech/ or music/ folder "
                                 "with .wav files")
        self.rirs = wav_files(rir, "training.rir") if rir is not None else []

    @property
    def kinds(self) -> list[str]:
        return (["reverb"] if self.rirs else []) + (["noise"] if self.noises else [])

    def wants(self, rng: np.random.Generator) -> bool:
        return bool(self.kinds) and rng.random() < self.prob

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Reverberate or add noise (an even choice when both are configured)."""
        kinds = self.kinds
        kind = kinds[int(rng.integers(0, len(kinds)))]
        return self.reverb(x, rng) if kind == "reverb" else self.add_noise(x, rng)

    def reverb(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        path = self.rirs[int(rng.integers(0, len(self.rirs)))]
        rir = read_segment(path, 0, wav_frames(path))
        energy = float(np.sqrt(np.sum(rir.astype(np.float64) ** 2)))
        if energy == 0.0:
            return x
        out = AF.fftconvolve(torch.from_numpy(x), torch.from_numpy(rir / energy))[: len(x)]
        return out.numpy().astype(np.float32)

    def add_noise(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        kinds = sorted(self.noises)
        kind = kinds[int(rng.integers(0, len(kinds)))]
        files = self.noises[kind]
        noise = random_segment(files[int(rng.integers(0, len(files)))], len(x), rng)
        lo, hi = SNR_DB[kind]
        snr = rng.uniform(lo, hi)
        p_signal, p_noise = float(np.mean(x.astype(np.float64) ** 2)), float(np.mean(noise.astype(np.float64) ** 2))
        if p_signal == 0.0 or p_noise == 0.0:
            return x
        gain = math.sqrt(p_signal / (p_noise * 10 ** (snr / 10)))
        return (x + gain * noise).astype(np.float32)
