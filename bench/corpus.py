"""Corpus preparation throughput: manifest building on a generated VoxCeleb-shaped tree, and fbank extraction.

Run: .venv/bin/python bench/corpus.py [--files 20000] [--workers 8] [--feature-utts 200] [--dir /tmp/x]

1. Manifests: a VoxCeleb2-shaped tree of `--files` tiny wav files (0.5 s; header checks do not read
   samples, so size does not matter) and a VoxCeleb1-shaped tree with three trial lists; times the
   listing (`list_vox2`) and `build_voxceleb` (header + size check of every file, trials, manifests).
2. Features: `--feature-utts` utterances of 8.2 s (VoxCeleb's mean length) extracted as one shard on
   one thread, as a workflow shard job does; reports × real time.
The tree goes in a temporary folder (or `--dir`) on the local disk: a cluster file system is slower.
"""

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from svbench.corpus.manifest import Utterance, write_manifest  # noqa: E402
from svbench.corpus.voxceleb import build_voxceleb, list_vox2  # noqa: E402
from svbench.features import extract_shard  # noqa: E402
from svbench.instrument.sidecar import cpu_model  # noqa: E402


def wav_bytes(samples: np.ndarray) -> bytes:
    path = Path(tempfile.mkstemp(suffix=".wav")[1])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.round(samples * 32767).astype("<i2").tobytes())
    data = path.read_bytes()
    path.unlink()
    return data


def make_tree(root: Path, speakers: int, videos: int, utts: int, data: bytes, first_id: int) -> list[str]:
    ids = []
    for s in range(speakers):
        for v in range(videos):
            folder = root / f"id{first_id + s:05d}" / f"video{v:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            for u in range(utts):
                (folder / f"{u + 1:05d}.wav").write_bytes(data)
                ids.append(f"id{first_id + s:05d}/video{v:06d}/{u + 1:05d}.wav")
    return ids


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=20000, help="files in the VoxCeleb2-shaped tree")
    p.add_argument("--workers", type=int, default=8, help="parallel header checks")
    p.add_argument("--feature-utts", type=int, default=200)
    p.add_argument("--dir", type=Path, default=None)
    a = p.parse_args()

    base = Path(a.dir or tempfile.mkdtemp(prefix="svbench-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    print(f"machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} logical CPUs, Python "
          f"{platform.python_version()}, {platform.system()} {platform.release()}; tree in {base}")
    try:
        # 1. manifests: 5 utterances per video, 4 videos per speaker, as many speakers as needed
        tiny = wav_bytes(rng.uniform(-0.1, 0.1, 8000))
        speakers = -(-a.files // 20)
        t = time.perf_counter()
        make_tree(base / "vox2", speakers, 4, 5, tiny, 1)
        vox1_ids = make_tree(base / "vox1", 40, 4, 5, tiny, 10001)
        gen_s = time.perf_counter() - t
        lists = {}
        for name in ("vox1_o", "vox1_e", "vox1_h"):
            pairs = rng.choice(len(vox1_ids), size=(2000, 2))
            lists[name] = base / f"{name}.txt"
            lists[name].write_text("".join(f"{int(vox1_ids[i][:7] == vox1_ids[j][:7])} {vox1_ids[i]} {vox1_ids[j]}\n"
                                           for i, j in pairs))
        n_files = speakers * 20
        t = time.perf_counter()
        list_vox2(base / "vox2", base / "out" / "vox2_files.txt")
        list_s = time.perf_counter() - t
        t = time.perf_counter()
        summary = build_voxceleb(base / "out" / "vox2_files.txt", base / "vox2", base / "conv", base / "vox1", lists,
                                 base / "out", workers=a.workers)
        build_s = time.perf_counter() - t
        checked = summary["utterances"]["train"] + summary["utterances"]["test"]
        print(f"tree: {n_files} + {len(vox1_ids)} files written in {gen_s:.1f} s")
        print(f"listing: {n_files} files in {list_s:.2f} s ({n_files / list_s:,.0f} files/s)")
        print(f"manifests ({a.workers} check threads): {checked} files checked in {build_s:.2f} s "
              f"({checked / build_s:,.0f} files/s); VoxCeleb2-dev's 1,092,009 files would take "
              f"~{1_092_009 / (checked / build_s) / 60:.1f} min at this rate")

        # 2. features: realistic lengths, one shard on one thread as in a workflow job
        long = [wav_bytes(rng.normal(0, 0.05, int(16000 * rng.uniform(4.0, 12.4)))) for _ in range(10)]
        utts = []
        (base / "feat_wav").mkdir()
        for k in range(a.feature_utts):
            path = base / "feat_wav" / f"{k:05d}.wav"
            path.write_bytes(long[k % len(long)])
            utts.append(Utterance(f"u{k:05d}", "s", path, 0.0))
        write_manifest(base / "feat.tsv", utts)
        audio_s = sum((len(long[k % len(long)]) - 44) / 32000 for k in range(a.feature_utts))
        t = time.perf_counter()
        extract_shard(base / "feat.tsv", base / "feats", 0, 1, progress=False)
        feat_s = time.perf_counter() - t
        print(f"features: {a.feature_utts} utterances, {audio_s / 3600:.2f} h of audio in {feat_s:.1f} s on one "
              f"thread ({audio_s / feat_s:.0f} x real time); VoxCeleb2-dev's 2,360 h would take "
              f"~{2360 * 3600 / (audio_s / feat_s) / 3600:.1f} core-hours")
    finally:
        if a.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
