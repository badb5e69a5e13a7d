"""m4a → 16 kHz mono 16-bit wav with ffmpeg, in batches over a sorted file list.

A batch is a slice of the list (`batch * batch_size` onwards), run as one workflow job with a few
ffmpeg processes in parallel. Each wav is written under a temporary name and renamed, so an existing
wav is always complete: a rerun after an interruption skips it and converts only what is left.
A file that ffmpeg cannot convert does not stop the batch: it is recorded in the batch report
(`source status message`), and manifest building then treats it as bad audio (stop or skip).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from svbench.corpus.audio import AudioError, check_wav
from svbench.errors import UserError
from svbench.fileio import write_text_atomic

log = logging.getLogger("svbench.convert")

REPORT_HEADER = "source\tstatus\tmessage\n"
PROGRESS_EVERY_S = 30.0  # a progress line this often, so long jobs show life in SLURM logs


def wav_path_for(source_rel: str, dst_root: Path) -> Path:
    """Where the wav of a listed m4a goes: the same relative path under `dst_root`, suffix .wav."""
    return Path(dst_root) / Path(source_rel).with_suffix(".wav")


def convert_file(src: Path, dst: Path, ffmpeg: str = "ffmpeg") -> bool:
    """Convert one file; False when `dst` already exists (a finished file), True when converted.

    Raises AudioError naming `src` with ffmpeg's own message when it cannot be converted.
    """
    if dst.exists():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")  # fixed name: a rerun overwrites what an interruption left
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
           "-ac", "1", "-vn", "-acodec", "pcm_s16le", "-ar", "16000", "-f", "wav", str(tmp)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if result.returncode != 0:
            lines = [line.replace(f"{src}: ", "") for line in result.stderr.splitlines() if line.strip()]
            raise AudioError(f"{src}: ffmpeg failed ({lines[-1] if lines else f'exit {result.returncode}'})")
        check_wav(tmp)  # ffmpeg can "succeed" on a file with no audio stream: that is not a wav to keep
        os.replace(tmp, dst)
    except AudioError as exc:
        tmp.unlink(missing_ok=True)
        raise AudioError(str(exc).replace(str(tmp), str(src))) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def read_list(list_file: Path) -> list[str]:
    """The relative paths of a listing written by `svbench corpus list`."""
    return [line for line in Path(list_file).read_text(encoding="utf-8").splitlines() if line]


def batch_sources(sources: list[str], batch: int, batch_size: int) -> list[str]:
    """The m4a files of one batch: a slice of the sorted m4a entries of the listing."""
    m4a = [s for s in sources if s.endswith(".m4a")]
    return m4a[batch * batch_size: (batch + 1) * batch_size]


def convert_batch(list_file: Path, src_root: Path, dst_root: Path, batch: int, batch_size: int, report: Path,
                  workers: int = 4, ffmpeg: str = "ffmpeg") -> dict[str, int]:
    """Convert one batch and write its report (atomically, last). Returns counts per status."""
    if shutil.which(ffmpeg) is None:
        raise UserError(f"ffmpeg not found as {ffmpeg!r}: install it (e.g. apt-get install ffmpeg) "
                        "or set corpus.voxceleb.convert.ffmpeg")
    todo = batch_sources(read_list(list_file), batch, batch_size)
    rows: list[str] = []
    counts = {"converted": 0, "kept": 0, "failed": 0}
    t0 = last = time.monotonic()

    def one(rel: str) -> tuple[str, str, str]:
        try:
            done = convert_file(Path(src_root) / rel, wav_path_for(rel, dst_root), ffmpeg)
            return rel, "converted" if done else "kept", ""
        except AudioError as exc:
            return rel, "failed", str(exc).replace("\t", " ").replace("\n", " ")

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for n, (rel, status, message) in enumerate(pool.map(one, todo), start=1):
            counts[status] += 1
            rows.append(f"{rel}\t{status}\t{message}\n")
            if status == "failed":
                log.warning("%s", message)
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                log.info("batch %d: %d/%d files, %.1f files/s", batch, n, len(todo), n / (last - t0))
    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report, REPORT_HEADER + "".join(rows))
    elapsed = max(time.monotonic() - t0, 1e-9)
    log.info("batch %d: %s in %.1f s (%.1f files/s)", batch, counts, elapsed, len(todo) / elapsed)
    return counts


def read_failures(reports: list[Path]) -> dict[str, str]:
    """Sources that failed to convert, with ffmpeg's message, from batch reports."""
    failed: dict[str, str] = {}
    for report in reports:
        for line in Path(report).read_text(encoding="utf-8").splitlines()[1:]:
            source, status, message = (line.split("\t") + ["", ""])[:3]
            if status == "failed":
                failed[source] = message
    return failed
