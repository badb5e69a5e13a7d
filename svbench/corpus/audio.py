"""Reading and writing PCM wav files (stdlib `wave` + numpy).

torchaudio >= 2.9 loads audio through torchcodec, which we do not depend on; plain PCM wav is all
the corpus needs, and the stdlib reads it without extra packages.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from svbench.errors import UserError
from svbench.fileio import atomic_write


class AudioError(UserError):
    """A wav file that cannot be read: not a wav, truncated, empty or in an unsupported format.

    The message names the file and says what is wrong with it; it is bad input, not a bug."""


# Integer PCM widths the reader understands (bytes per sample) and their full scale.
_FULL_SCALE = {1: 128.0, 2: 32768.0, 3: 8388608.0, 4: 2147483648.0}


def _header_problem(path: Path) -> str:
    """Why `wave` rejected a header when its exception says nothing (a bare EOFError or RuntimeError).

    Walks the chunks as `wave` does: inside the file and inside the RIFF chunk, fmt first, up to `data`.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return f"file ends inside the RIFF header, at byte {size}"
        riff_end = 8 + int.from_bytes(head[4:8], "little")
        end = min(size, riff_end)
        pos = 12
        while pos + 8 <= end:
            f.seek(pos)
            chunk = f.read(8)
            name, n = repr(chunk[:4])[2:-1], int.from_bytes(chunk[4:], "little")  # repr: damaged ids are bytes
            if name == "data":
                break
            if name == "fmt " and n < 16:
                return f"fmt chunk size {n}, a PCM fmt chunk has at least 16 bytes"
            if pos + 8 + n > end:
                past = f"the RIFF chunk's end at byte {end} (RIFF size {end - 8})" if end < size else \
                    f"the end of the file at byte {end}"
                return f"'{name}' chunk of size {n} at byte {pos} runs past {past}"
            pos += 8 + n + (n & 1)  # chunks are padded to even sizes
    return f"damaged header, ends at byte {pos}"


def _open(path: Path) -> wave.Wave_read:
    try:
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: empty file")
        return wave.open(str(path), "rb")
    except AudioError:
        raise
    except OSError as e:
        raise AudioError(f"{path}: cannot open ({e})") from e
    except Exception as e:
        # A damaged header makes `wave` raise wave.Error, EOFError, struct.error or a bare RuntimeError (a
        # chunk past the RIFF chunk's end), some without a message: all are a bad file, so say what is wrong.
        raise AudioError(f"{path}: not a readable PCM wav file ({str(e) or _header_problem(path)})") from e


def wav_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(sample_rate, channels, n_frames) from the header only, without reading the samples."""
    path = Path(path)
    with _open(path) as w:
        return w.getframerate(), w.getnchannels(), w.getnframes()


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a PCM wav as mono float32 in [-1, 1] (channels averaged) and its sample rate."""
    path = Path(path)
    with _open(path) as w:
        rate, channels, width, n_frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        if width not in _FULL_SCALE:
            raise AudioError(f"{path}: unsupported sample width of {width} bytes")
        try:
            data = w.readframes(n_frames)
        except Exception as e:  # as in _open: whatever a damaged file makes `wave` raise is a bad file
            raise AudioError(f"{path}: cannot read samples ({str(e) or type(e).__name__})") from e
    if n_frames == 0:
        raise AudioError(f"{path}: no audio frames")
    if len(data) < n_frames * channels * width:
        got = len(data) // (channels * width)
        raise AudioError(f"{path}: truncated: header says {n_frames} frames, file holds {got}")

    if width == 1:  # 8-bit wav is unsigned
        ints = np.frombuffer(data, dtype=np.uint8).astype(np.int32) - 128
    elif width == 3:  # little-endian 24-bit: widen to int32 by putting the bytes in the top three
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        ints = (
            raw[:, 0].astype(np.int32) << 8 | raw[:, 1].astype(np.int32) << 16 | raw[:, 2].astype(np.int32) << 24
        ) >> 8
    else:
        ints = np.frombuffer(data, dtype="<i2" if width == 2 else "<i4")
    samples = ints.astype(np.float64) / _FULL_SCALE[width]
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples.astype(np.float32), rate


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = 16000) -> None:
    """Write mono float samples in [-1, 1] as 16-bit PCM, atomically (temp file, then os.replace).

    Values outside [-1, 1] are clipped. A reader never sees a half-written file under `path`.
    """
    path = Path(path)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{path}: expected mono samples (1-D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: samples contain NaN or infinity")
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")

    with atomic_write(path, "wb") as f, wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())


def _data_offset(path: Path) -> int:
    """Byte offset of the `data` chunk's samples, found by walking the RIFF chunks (header reads only)."""
    with open(path, "rb") as f:
        f.seek(12)  # "RIFF" size "WAVE": `wave` has already checked them
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise AudioError(f"{path}: no data chunk")
            size = int.from_bytes(head[4:], "little")
            if head[:4] == b"data":
                return f.tell()
            f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to even sizes


def check_wav(path: str | os.PathLike, sample_rate: int = 16000) -> float:
    """Seconds of audio in a wav that `read_wav` will read in full, from its header and size only.

    Raises AudioError naming the file for anything that is not a complete, non-empty, mono,
    `sample_rate` PCM wav: unreadable, empty, truncated (header frame count beyond the file's end),
    another sample rate or several channels. This is what makes sure nothing bad is read as silence.
    """
    path = Path(path)
    with _open(path) as w:
        rate, channels, width, n_frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
    if width not in _FULL_SCALE:
        raise AudioError(f"{path}: unsupported sample width of {width} bytes")
    if rate != sample_rate:
        raise AudioError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    if channels != 1:
        raise AudioError(f"{path}: {channels} channels, expected mono")
    if n_frames == 0:
        raise AudioError(f"{path}: no audio frames")
    held = (path.stat().st_size - _data_offset(path)) // (channels * width)
    if held < n_frames:
        raise AudioError(f"{path}: truncated: header says {n_frames} frames, file holds {held}")
    return n_frames / rate
