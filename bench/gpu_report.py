"""The report of ``bench/gpu_check.sh``: machine facts, each part's figures against its goal, one verdict.

``python bench/gpu_report.py setup --out DIR [--dry] [--command TEXT]`` writes ``DIR/facts.json`` (GPU name,
driver, torch/CUDA versions, date, host) and, in dry mode, the fake NVML the parts read (``DIR/fake_nvml``).
``python bench/gpu_report.py report --out DIR [--dry]`` reads every part's ``DIR/<part>/result.json`` (written
by ``bench/gpu_parts.py``; a part that wrote none, or was stopped by its time limit, is reported as failed
with its exit status and the end of its log) and writes ``DIR/report.md`` and ``DIR/report.json``.
Exit status of ``report``: 0 every goal met (dry mode: every part's plumbing ran), 2 otherwise.

A figure that could not be measured has the value None (empty in the report) and a note saying why:
never 0. In dry mode every figure carries ``DRY_LABEL`` and no goal is judged.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRY_LABEL = "dry run (CPU, fake NVML): not a GPU measurement"
# (id, title) in the order they run; the shell script uses the same ids
PARTS = [
    ("nvml", "NVML counter energy against the integral of sampled power (repeat-and-delay, Yang et al. SC'24)"),
    ("amp", "ResNet34 training step: AMP bf16 + channels-last against fp32"),
    ("util", "GPU utilisation while training from the memory-mapped feature store"),
    ("overhead", "The sidecar's overhead on a busy GPU: training throughput with and without svbench monitor"),
    ("demo", "The demo config's train and embed on the GPU, end to end under svbench monitor"),
]
TITLES = dict(PARTS)


@dataclass(frozen=True)
class Goal:
    """What a figure is judged against: the text shown, and the test of a measured value."""

    text: str
    test: Callable[[object], bool]


@dataclass
class Figure:
    name: str
    value: float | int | str | None  # None: not measured (the note says why), never 0 in its place
    unit: str = ""
    goal: str = ""  # "" for figures given as context only
    met: bool | None = None  # None: not judged (no goal, or dry mode)
    note: str = ""


@dataclass
class Result:
    """One part's outcome, filled as it runs and written even when it fails (what it measured so far)."""

    id: str
    out_dir: Path
    dry: bool
    title: str = ""
    status: str = "running"
    error: str | None = None
    seconds: float | None = None
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str = ""

    def __post_init__(self) -> None:
        self.title = self.title or TITLES.get(self.id, self.id)

    def figure(self, name: str, value: float | int | str | None, unit: str = "", goal: Goal | None = None,
               note: str = "", missing: str = "not measured") -> Figure:
        """Add a figure; with a goal it is judged here (not in dry mode). ``missing``: the note of an empty value."""
        if isinstance(value, float) and value != value:  # NaN: not measured either
            value = None
        notes = [note] if note else []
        if value is None:
            notes.insert(0, missing)
        met = None
        if goal is not None and not self.dry:
            met = value is not None and bool(goal.test(value))
        if self.dry:
            notes.append(DRY_LABEL)
        fig = Figure(name, value, unit, goal.text if goal else "", met, "; ".join(notes))
        self.figures.append(fig)
        return fig

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "status": self.status, "error": self.error,
                "seconds": self.seconds, "figures": [dataclasses.asdict(f) for f in self.figures],
                "notes": self.notes, "verdict": self.verdict}

    def write(self) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "result.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, default=str))
        os.replace(tmp, path)  # a part killed mid-write leaves the previous file, never half of one
        return path


# --- machine facts --------------------------------------------------------------------------------

def torch_versions() -> dict:
    """torch's version and the CUDA it was built for, read from torch/version.py without importing torch."""
    try:
        dist = metadata.distribution("torch")
        text = Path(dist.locate_file("torch/version.py")).read_text()
    except (metadata.PackageNotFoundError, OSError):
        return {"torch": None, "torch_cuda": None}
    found = dict(re.findall(r"^(__version__|cuda)\s*(?::[^=]*)?=\s*'([^']*)'", text, re.M))
    return {"torch": found.get("__version__"), "torch_cuda": found.get("cuda")}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _nvml_facts() -> dict:
    """GPU 0 (in the job's view) as NVML names it: the real driver, or the fake one in dry mode."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # ImportError, NVMLError: reported, not fatal here
        return {"nvml_error": str(exc)}
    try:
        text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
        handle = (pynvml.nvmlDeviceGetHandleByUUID(visible) if visible.startswith("GPU-")
                  else pynvml.nvmlDeviceGetHandleByIndex(int(visible) if visible.isdigit() else 0))
        out = {"gpu_name": text(pynvml.nvmlDeviceGetName(handle)), "gpu_uuid": text(pynvml.nvmlDeviceGetUUID(handle)),
               "driver": text(pynvml.nvmlSystemGetDriverVersion()), "gpu_count": int(pynvml.nvmlDeviceGetCount())}
        try:
            out["power_limit_w"] = pynvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)[1] / 1000
        except Exception:  # not on every board or binding: left out
            pass
        return out
    finally:
        pynvml.nvmlShutdown()


def _torch_gpu_facts() -> dict:
    import torch

    out = {"cudnn": torch.backends.cudnn.version(), "torch_cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(torch_gpu=props.name, compute_capability=f"{props.major}.{props.minor}",
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
    return out


def facts(dry: bool, command: str) -> dict:
    """What the report says about the run and the machine."""
    try:
        svbench = metadata.version("svbench")
    except metadata.PackageNotFoundError:
        svbench = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = None
    out = {"date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), "command": command,
           "mode": "dry" if dry else "gpu", "host": socket.gethostname(), "kernel": platform.release(),
           "cpu": _cpu(), "logical_cpus": os.cpu_count(), "memory_gib": None if mem is None else round(mem, 1),
           "python": platform.python_version(), "svbench": svbench,
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), **torch_versions(), **_nvml_facts()}
    if not dry:  # the GPU's own view (imports torch: seconds, so only where it is the point)
        out.update(_torch_gpu_facts())
    elif "gpu_name" in out:
        out["gpu_name"] += " (the fake NVML of tests/fakes: no GPU)"
    return out


def setup(out: Path, dry: bool, command: str) -> None:
    """facts.json; in dry mode first the fake NVML (a pynvml.py with one GPU at 300 W) under ``out/fake_nvml``.

    The dry run uses the pure-Python fake, not the C driver of ``tests/fakes/libnvml``: it needs no compiler on
    the machine that runs the check, and what it tests is the check's plumbing; the real binding is tested
    against the C driver in ``tests/energy/test_nvml_real_binding.py``."""
    out.mkdir(parents=True, exist_ok=True)
    if dry:
        sys.path.insert(0, str(ROOT / "tests"))
        from fakes.gpus import UUID_A, write_fake_pynvml

        write_fake_pynvml(out / "fake_nvml", [UUID_A], 300)
        sys.path.insert(0, str(out / "fake_nvml"))  # this process reads its facts through it too
    (out / "facts.json").write_text(json.dumps(facts(dry, command), indent=1, default=str))


# --- the report -------------------------------------------------------------------------------------

def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def load_part(out: Path, part: str) -> dict:
    """A part's result as written, with its exit status from the shell; a missing result becomes a failure."""
    folder = out / part
    exit_file = folder / "exit"
    rc = seconds = limit = None
    if exit_file.exists():
        rc, seconds, limit = (float(x) for x in exit_file.read_text().split()[:3])
        rc = int(rc)
    path = folder / "result.json"
    result = json.loads(path.read_text()) if path.exists() else {
        "id": part, "title": TITLES[part], "status": "not run" if rc is None else "failed", "figures": [],
        "notes": [], "verdict": "", "seconds": seconds,
        "error": None if rc is None else f"exited with status {rc} without writing its result"}
    result.update(exit_status=rc, wall_s=seconds, budget_s=limit)
    if rc in (124, 137):
        result["status"] = "failed"
        result["error"] = (f"stopped at its time limit ({limit:g} s, exit {rc})"
                           + (f"; {result['error']}" if result.get("error") else ""))
    elif rc not in (None, 0) and result["status"] == "ok":
        result["status"], result["error"] = "failed", f"exited with status {rc}"
    if result["status"] == "running":  # killed before it could say how it ended
        result["status"], result["error"] = "failed", result.get("error") or "ended without a result"
    if result["status"] == "failed":
        result["log_tail"] = _tail(folder / "log.txt")
    return result


def judge(parts: list[dict], dry: bool) -> tuple[int, str]:
    """Exit status and its one-line reason."""
    failed = [p["id"] for p in parts if p["status"] != "ok"]
    if dry:
        if failed:
            return 2, f"dry run: the plumbing of {', '.join(failed)} failed"
        return 0, "dry run: every part's plumbing ran (goals not judged: not a GPU measurement)"
    goals = [f for p in parts for f in p["figures"] if f["goal"]]
    missed = [f"{p['id']}: {f['name']}" for p in parts for f in p["figures"] if f["goal"] and f["met"] is not True]
    if failed or missed:
        what = [f"{len(missed)} of {len(goals)} goals missed"] + ([f"failed: {', '.join(failed)}"] if failed else [])
        return 2, "; ".join(what)
    return 0, f"all {len(goals)} goals met"


def _value(fig: dict) -> str:
    v = fig["value"]
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:.4g}"
    return f"{v} {fig['unit']}".strip()


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


FACT_ROWS = [("date", "date_utc"), ("command", "command"), ("mode", "mode"), ("GPU (NVML)", "gpu_name"),
             ("GPU (torch)", "torch_gpu"), ("compute capability", "compute_capability"),
             ("GPU memory (GiB)", "gpu_memory_gib"), ("power limit max (W)", "power_limit_w"),
             ("driver", "driver"), ("NVML error", "nvml_error"), ("torch", "torch"),
             ("CUDA (torch built for)", "torch_cuda"), ("cuDNN", "cudnn"), ("bf16 supported", "bf16"),
             ("CUDA_VISIBLE_DEVICES", "cuda_visible_devices"), ("host", "host"), ("kernel", "kernel"),
             ("CPU", "cpu"), ("logical CPUs", "logical_cpus"), ("memory (GiB)", "memory_gib"),
             ("Python", "python"), ("svbench", "svbench")]


def markdown(report: dict) -> str:
    dry = report["mode"] == "dry"
    lines = ["# svbench GPU device check (`bench/gpu_check.sh`)", ""]
    if dry:
        lines += [f"**{DRY_LABEL.upper()}.** Every part ran at tiny scale on the CPU against the fake NVML of "
                  "`tests/fakes`; the figures below only show that the plumbing works, and no goal is judged.", ""]
    lines += [f"**Result: {report['summary']}** (exit status {report['exit_status']}); "
              f"{report['wall_s']:.0f} s in all." if report.get("wall_s") is not None else
              f"**Result: {report['summary']}** (exit status {report['exit_status']}).", "",
              "| fact | value |", "|---|---|"]
    f = report["facts"]
    lines += [f"| {name} | {_cell(f[key])} |" for name, key in FACT_ROWS if f.get(key) is not None]
    for n, part in enumerate(report["parts"], 1):
        timing = ""
        if part.get("wall_s") is not None:
            timing = f" ({part['wall_s']:.0f} s of a {part['budget_s']:.0f}-s budget)"
        lines += ["", f"## {n}. {part['title']}: {part['status'].upper()}{timing}", ""]
        if part.get("error"):
            lines += [f"**Error:** {_cell(part['error'])}", ""]
        if part["figures"]:
            lines += ["| figure | value | goal | met | note |", "|---|---|---|---|---|"]
            for fig in part["figures"]:
                met = {True: "yes", False: "**NO**", None: "–" if fig["goal"] else ""}[fig["met"]]
                goal = fig["goal"] + (" (not judged)" if dry and fig["goal"] else "")
                lines.append(f"| {_cell(fig['name'])} | {_cell(_value(fig))} | {_cell(goal)} | {met} | "
                             f"{_cell(fig['note'])} |")
        elif part["status"] != "not run":
            lines.append("No figures: the part failed before measuring anything.")
        if part.get("verdict"):
            lines += ["", "Verdict:", ""] + [f"- {ln}" for ln in part["verdict"].splitlines()]
        if part.get("notes"):
            lines += ["", "Notes:", ""] + [f"- {_cell(ln)}" for ln in part["notes"]]
        if part.get("log_tail"):
            lines += ["", "End of its log:", "", "```", part["log_tail"], "```"]
    return "\n".join(lines) + "\n"


def report(out: Path, dry: bool, wall_s: float | None = None) -> int:
    facts_path = out / "facts.json"
    machine = json.loads(facts_path.read_text()) if facts_path.exists() else {}
    parts = [load_part(out, part) for part, _ in PARTS]
    status, summary_text = judge(parts, dry)
    data = {"mode": "dry" if dry else "gpu", "label": DRY_LABEL if dry else None, "exit_status": status,
            "summary": summary_text, "wall_s": wall_s, "facts": machine, "parts": parts}
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str))
    (out / "report.md").write_text(markdown(data))
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["setup", "report"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry", action="store_true")
    parser.add_argument("--command", default="bash bench/gpu_check.sh")
    parser.add_argument("--wall-s", type=float)
    args = parser.parse_args(argv)
    if args.action == "setup":
        setup(args.out, args.dry, args.command)
        return 0
    status = report(args.out, args.dry, args.wall_s)
    print(f"gpu_check: {json.loads((args.out / 'report.json').read_text())['summary']} (exit status {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
