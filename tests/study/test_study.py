import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.study import GRID, T0, fake_study, write_score_replicates

from svbench.study.analysis import (
    by_arch,
    fit_energy_model,
    knee,
    mean_sd_text,
    pareto_front,
    predict_training_energy,
)
from svbench.study.figures import FIGURES, make_figures, power_series, stage_families
from svbench.study.grid import arch_table, specs_from_grid
from svbench.study.report import write_study_report
from svbench.study.summary import build_summary, energy_of, summary_rows
from svbench.study.tables import write_table


def _rows(*rows: tuple) -> pd.DataFrame:
    cols = ["phase", "index", "attempt", "seconds", "component", "energy_j", "coverage", "estimated",
            "t_start_wall_ns", "t_end_wall_ns"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows], columns=cols)


def test_energy_prefers_the_node_meter_and_keeps_components() -> None:
    frame = _rows(("job", None, 1, 10.0, "gpu", 1000.0, 1.0, False, 0, 10),
                  ("job", None, 1, 10.0, "cpu", 300.0, 1.0, False, 0, 10),
                  ("job", None, 1, 10.0, "node", 2000.0, 0.9, False, 0, 10))
    e = energy_of(frame, "job")
    assert e["energy_j"] == 2000.0 and e["basis"] == "measured" and e["coverage"] == 0.9
    assert e["gpu_j"] == 1000.0 and math.isnan(e["dram_j"])


def test_energy_sums_components_and_attempts_and_labels_estimates() -> None:
    frame = _rows(("job", None, 1, 5.0, "cpu", 10.0, 1.0, True, 0, 5),
                  ("job", None, 2, 5.0, "cpu", 20.0, 1.0, True, 10, 15),
                  ("job", None, 2, 5.0, "gpu", 100.0, 1.0, False, 10, 15))
    e = energy_of(frame, "job")
    assert e["energy_j"] == 130.0
    assert e["basis"] == "measured+estimated"
    assert e["seconds"] == 10.0  # two attempts of 5 s


def test_no_sensor_is_empty_not_zero() -> None:
    e = energy_of(_rows(), "job")
    assert math.isnan(e["energy_j"]) and e["basis"] == "not measured"
    psys_only = _rows(("job", None, 1, 5.0, "other", 10.0, 1.0, False, 0, 5))
    assert math.isnan(energy_of(psys_only, "job")["energy_j"])  # psys is never added to components


def test_pareto_front() -> None:
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    err = np.array([10.0, 8.0, 9.0, 5.0, 7.0])
    assert pareto_front(cost, err).tolist() == [0, 1, 4, 3]


def test_grid_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match=r"grid\[1\].name"):
        specs_from_grid([{"preset": "ResNet18", "width": 8, "name": "a"}, {"preset": "ResNet34", "width": 8,
                                                                          "name": "a"}])


def test_arch_table_lists_params_and_macs() -> None:
    table = arch_table(specs_from_grid([{"preset": "ResNet34"}]))
    assert "ResNet34" in table and "6.634" in table and "4.528" in table


def test_tables_show_missing_as_a_dash(tmp_path: Path) -> None:
    write_table(pd.DataFrame({"arch": ["a"], "gpu_kwh": [float("nan")], "cpu_kwh": [0.5]}), tmp_path / "t", "cap")
    html = (tmp_path / "t.html").read_text()
    assert "—" in html and "cap" in html and ">0<" not in html
    assert (tmp_path / "t.tex").read_text().startswith("\\begin{table}")
    assert pd.read_csv(tmp_path / "t.csv")["gpu_kwh"].isna().all()


def test_knee_is_the_point_farthest_above_the_chord() -> None:
    # energy 1, 10, 100, 1000: the error falls fast, then barely: the knee is at 10
    cost = np.array([1.0, 10.0, 100.0, 1000.0, 50.0])
    err = np.array([20.0, 10.0, 9.0, 8.5, 15.0])
    assert pareto_front(cost, err).tolist() == [0, 1, 2, 3]
    assert knee(cost, err) == 1
    assert knee(cost[:2], err[:2]) is None  # two Pareto points: no knee
    assert knee(np.array([1.0, 10, 100]), np.array([10.0, 9.5, 1])) is None  # bends the other way
    assert pareto_front(np.array([1.0, np.nan, 2]), np.array([5.0, 1, 4])).tolist() == [0, 2]  # NaN left out


def test_mean_sd_over_seeds() -> None:
    frame = pd.DataFrame({"arch": ["a", "a", "b"], "seed": [0, 1, 0], "block": "basic", "eer": [10.0, 12.0, 9.0],
                          "kwh": [1.0, float("nan"), float("nan")]})
    m = by_arch(frame).set_index("arch")
    assert m.loc["a", "eer_mean"] == 11.0 and m.loc["a", "eer_sd"] == pytest.approx(math.sqrt(2))
    assert math.isnan(m.loc["b", "eer_sd"]) and m.loc["a", "seeds"] == 2
    assert m.loc["a", "kwh_mean"] == 1.0 and math.isnan(m.loc["b", "kwh_mean"])
    assert mean_sd_text(11.0, math.sqrt(2)) == "11 ± 1.4"
    assert mean_sd_text(9.0, float("nan")) == "9" and mean_sd_text(float("nan"), 1.0) == "—"


def test_energy_model_recovers_a_linear_cost_and_predicts_held_out() -> None:
    rows = [{"arch": f"x{i}", "macs_g": m, "samples_per_epoch": 1000, "epochs": 10,
             "train_energy_kwh": (2e-9 * m * 1e9 * 1e4 + 500) / 3.6e6, "train_energy_basis": "measured"}
            for i, m in enumerate([0.5, 1.0, 2.0, 4.0])]
    model = fit_energy_model(pd.DataFrame(rows))
    assert model.j_per_mac == pytest.approx(2e-9) and model.j_per_job == pytest.approx(500)
    assert model.mean_abs_error == pytest.approx(0, abs=1e-9) and len(model.held_out) == 4
    two = fit_energy_model(pd.DataFrame(rows[:2]))
    assert math.isnan(two.mean_abs_error)  # held out of a 2-architecture fit: not testable
    with pytest.raises(ValueError, match="at least 2"):
        fit_energy_model(pd.DataFrame(rows[:1]))
    from svbench.models import preset
    p = predict_training_energy(preset("ResNet18", 8), pd.DataFrame(rows), epochs=10, samples=1000)
    assert p["predicted_kwh"] == pytest.approx((2e-9 * p["macs_g"] * 1e9 * 1e4 + 500) / 3.6e6)
    assert p["mean_abs_error"] == pytest.approx(0, abs=1e-9) and not p["in_fit"]


def test_predict_command_prints_estimate_and_held_out_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from svbench.cli import main

    config = fake_study(tmp_path)
    build_summary(tmp_path / "results", config, tmp_path / "study")
    with pytest.raises(SystemExit) as done:
        main(["predict", "--arch", "ResNet34", "--width", "4", "--summary", str(tmp_path / "study/summary.csv"),
              "--epochs", "3", "--samples", "50"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "ResNet34_w4" in out and "predicted training energy" in out and "held-out error" in out and "%" in out
    with pytest.raises(SystemExit) as done:
        main(["predict", "--arch", '{"name": "x", "block": "basic", "stages": [1, 2]}', "--summary",
              str(tmp_path / "study/summary.csv"), "--epochs", "3", "--samples", "50"])
    assert done.value.code == 2


def test_summary_tables_carbon_and_gpu_count(tmp_path: Path) -> None:
    config = fake_study(tmp_path)
    frame = build_summary(tmp_path / "results", config, tmp_path / "study")
    assert list(frame["arch"]) == ["a", "a", "b", "b", "b_back", "b_back", "c", "c"]
    row = frame.iloc[0]
    assert row["train_energy_basis"] == "measured"
    # operational: energy x PUE x intensity
    assert row["train_co2e_g"] == pytest.approx(row["train_energy_kwh"] * 1.2 * 100.0)
    # no NVML channel and no CUDA_VISIBLE_DEVICES: 0 GPUs, embodied is the server's share only
    assert row["train_gpus"] == 0 and row["embodied_gpu_co2e_g"] == 0
    hours = (frame.iloc[0]["train_hours"] + 3.0 / 3600)
    assert row["embodied_server_co2e_g"] == pytest.approx(1e3 * hours * 0.056, rel=1e-3)
    by = pd.read_csv(tmp_path / "study/summary_by_arch.csv")
    assert len(by) == 4 and {"eer_cosine_syn_mean", "eer_cosine_syn_sd"} <= set(by.columns)
    html = (tmp_path / "study/summary_by_arch.html").read_text()
    assert "±" in html and (tmp_path / "study/summary_by_arch.tex").read_text().count("±") >= 4
    phases = pd.read_csv(tmp_path / "study/phases.csv")
    train_a = phases[(phases["arch"] == "a") & (phases["seed"] == 0) & (phases["step"] == "train")]
    assert list(train_a["phase"]) == ["epoch", "rest_of_job", "job"]
    parts = train_a.set_index("phase")["energy_j"]
    assert parts["epoch"] + parts["rest_of_job"] == pytest.approx(parts["job"])
    prov = (tmp_path / "study/provenance.html").read_text()
    for text in ("PUE", "site", "embodied per GPU-hour", "BLOOM", "rapl/package-0", "counter", "How every job"):
        assert text in prov
    jobs = pd.read_csv(tmp_path / "study/provenance_jobs.csv")
    assert len(jobs) == 4 * 2 * 3 and (jobs["basis"] == "measured").all()


def test_gpu_count_comes_from_nvml_channels() -> None:
    from svbench.energy.carbon import Factor, embodied_g, gpu_count

    rows = pd.DataFrame({"phase": "job", "sensor": ["nvml", "nvml", "rapl"], "channel": ["gpu0", "gpu1", "pkg"],
                         "component": ["gpu", "gpu", "cpu"]})
    assert gpu_count(rows) == 2
    assert gpu_count(rows.iloc[2:]) is None  # nothing recorded about the node's GPUs: unknown, not 0
    assert gpu_count(rows.iloc[2:], {"node": {"gpu_devices": 0, "environment": {}}}) == 0
    # CUDA_VISIBLE_DEVICES unset means every GPU of the node: 4 there and none read is unknown, not 0
    assert gpu_count(rows.iloc[2:], {"node": {"gpu_devices": 4, "environment": {}}}) is None
    assert gpu_count(rows.iloc[2:], {"node": {"gpu_devices": 4, "environment": {"CUDA_VISIBLE_DEVICES": ""}}}) == 0
    given_gpus = {"node": {"environment": {"CUDA_VISIBLE_DEVICES": "0,1"}}}
    assert gpu_count(rows.iloc[2:], given_gpus) is None  # GPUs given but not read: unknown, not assumed
    gpu_g, server_g = embodied_g(2.0, None, Factor(0.0034, "kg/h", "s"), Factor(0.056, "kg/h", "s"))
    assert math.isnan(gpu_g) and server_g == pytest.approx(112.0)
    assert embodied_g(2.0, 4, Factor(0.0034, "kg/h", "s"), None)[0] == pytest.approx(27.2)


def test_study_report_names_pareto_and_knee(tmp_path: Path) -> None:
    config = fake_study(tmp_path)
    build_summary(tmp_path / "results", config, tmp_path / "study")
    findings = write_study_report(tmp_path / "study/summary.csv", tmp_path / "study.html", tmp_path / "model.json",
                                  tmp_path / "model.csv")
    assert [p["arch"] for p in findings["pareto"]] == ["a", "b", "c"]  # b_back: as costly as b, less accurate
    html = (tmp_path / "study.html").read_text()
    assert "Pareto-optimal" in html and "knee" in html.lower() and "Held-out error" in html
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["mean_abs_error"] < 0.05  # energy was made linear in MACs x samples


@pytest.mark.parametrize("archs, energy", [(4, True), (1, True), (2, False)])
def test_figures_from_a_synthetic_study(tmp_path: Path, archs: int, energy: bool) -> None:
    config = fake_study(tmp_path, grid=GRID[:archs], seeds=(0,), energy=energy)
    build_summary(tmp_path / "results", config, tmp_path / "study")
    made = make_figures(tmp_path / "study/summary.csv", tmp_path / "fig", tmp_path / "study/phases.csv",
                        tmp_path / "results")
    assert sorted(p.name for p in made) == sorted(FIGURES)
    for p in made:
        assert p.stat().st_size > 5_000, p


def test_stage_families_and_power_series() -> None:
    frame = pd.DataFrame({"arch": ["a", "b", "b_back", "c"], "seed": 0, "block": "basic",
                          "stages": ["1-1-1-1", "2-2-2-2", "1-1-2-4", "1-1-1-1"],
                          "widths": ["4-8-16-32"] * 3 + ["8-16-32-64"], "eer": [1.0, 2, 3, 4]})
    families = stage_families(frame)
    assert len(families) == 1 and list(families[0]["arch"]) == ["b", "b_back"]
    trace = pd.DataFrame({"t_wall_ns": [0, 10**9, 2 * 10**9, 0, 10**9], "sensor": ["rapl"] * 3 + ["ipmi"] * 2,
                          "channel": ["pkg"] * 3 + ["node"] * 2, "quantity": ["energy"] * 3 + ["power"] * 2,
                          "value": [0.0, 50.0, 150.0, 300.0, 310.0], "component": ["cpu"] * 3 + ["node"] * 2,
                          "estimated": False})
    s = power_series(trace)
    assert s[s["component"] == "cpu"]["watts"].tolist() == [50.0, 100.0]
    assert s[s["component"] == "node"]["watts"].tolist() == [300.0, 310.0]


def test_node_sharing_comes_from_the_recorded_job_context(tmp_path: Path) -> None:
    import json

    from svbench.instrument.markers import node_sharing

    def markers(*contexts: dict) -> Path:
        path = tmp_path / "markers.jsonl"
        begin = {"event": "begin", "t_wall_ns": 1, "t_mono_ns": 1}  # the stamps every marker carries
        path.write_text("".join(json.dumps(begin | {"job": c}) + "\n" for c in contexts))
        return path

    assert node_sharing(tmp_path / "missing.jsonl") == "unknown"
    assert node_sharing(markers({"host": "laptop"})).startswith("shared node")
    assert node_sharing(markers({"slurm_job_id": "1", "exclusive": True})) == "exclusive node"
    assert node_sharing(markers({"slurm_job_id": "1", "exclusive": True},
                                {"slurm_job_id": "2", "exclusive": False})).startswith("shared node")
    assert "unknown" in node_sharing(markers({"slurm_job_id": "1", "exclusive": None}))


def test_study_report_with_one_architecture_still_writes_every_output(tmp_path: Path) -> None:
    import json

    from svbench.study.report import write_study_report

    pd.DataFrame([{"arch": "a", "seed": 0, "eer_cosine_x": 10.0, "train_energy_kwh": 1e-4, "macs_g": 0.1,
                   "samples_per_epoch": 100, "epochs": 2, "train_energy_basis": "estimated"}]).to_csv(
        tmp_path / "summary.csv", index=False)
    write_study_report(tmp_path / "summary.csv", tmp_path / "study.html", tmp_path / "model.json",
                       tmp_path / "model.csv")
    assert json.loads((tmp_path / "model.json").read_text())["fitted"] is False
    assert (tmp_path / "model.csv").exists() and "Not fitted" in (tmp_path / "study.html").read_text()


def test_channels_without_samples_stay_empty_in_the_total() -> None:
    frame = _rows(("job", None, 1, 5.0, "cpu", float("nan"), 0.0, False, 0, 5))
    assert math.isnan(energy_of(frame, "job")["energy_j"]) and math.isnan(energy_of(frame, "job")["cpu_j"])


def test_binned_power_streams_sessions_apart(tmp_path: Path) -> None:
    """Two sessions whose counters restart: each is differentiated on its own, never across the restart."""
    from svbench.instrument.sensors.base import Reading
    from svbench.instrument.trace import SESSION_QUANTITY, SESSION_SENSOR, TraceWriter
    from svbench.study.figures import binned_power

    w = TraceWriter(tmp_path / "trace.csv")
    for sid, start, watts in (("a", 0.0, 100.0), ("b", 20.0, 300.0)):
        ns = T0 + int(start * 1e9)
        w.write(SESSION_SENSOR, [Reading(sid, SESSION_QUANTITY, 0.0, "", "other")], ns, ns)
        for k in range(41):
            ns = T0 + int((start + 0.25 * k) * 1e9)
            w.write("rapl", [Reading("package-0", "energy", watts * 0.25 * k, "J", "cpu")], ns, 10**9 * k)
    w.close()
    s = binned_power(tmp_path / "trace.csv", bins=30)
    watts = s["watts"].to_numpy()
    near = np.isclose(watts, 100.0, rtol=1e-5) | np.isclose(watts, 300.0, rtol=1e-5)
    assert near.all() and (watts < 200).any() and (watts > 200).any()  # no step of the restart in between
    assert s["t"].max() - s["t"].min() > 25


# --- issue 12: the summary's honest figures --------------------------------------------------------------------


def _job(folder: Path, readings, markers: list[dict], sidecar: dict | None = None, step_s: float = 10.0,
         seconds: float = 7200.0) -> pd.DataFrame:
    """A one-session trace of ``readings(t) -> [Reading]`` every ``step_s``, its markers, joined."""
    from svbench.energy.join import join
    from svbench.instrument.sensors.base import Reading
    from svbench.instrument.trace import SESSION_QUANTITY, SESSION_SENSOR, TraceWriter

    folder.mkdir(parents=True, exist_ok=True)
    w = TraceWriter(folder / "trace.csv")
    w.write(SESSION_SENSOR, [Reading("s1", SESSION_QUANTITY, 0.0, "", "other")], T0, 10**12)
    for k in range(int(seconds / step_s) + 1):
        t = k * step_s
        w.write("x", readings(t), T0 + int(t * 1e9), 10**12 + int(t * 1e9))
    w.close()
    # marker times ``t`` in seconds: wall T0 + t, monotonic 1e12 ns + t, as the trace's rows
    (folder / "markers.jsonl").write_text("".join(json.dumps(
        {"t_wall_ns": T0 + int(m["t"] * 1e9), "t_mono_ns": 10**12 + int(m["t"] * 1e9)}
        | {k: v for k, v in m.items() if k != "t"}) + "\n" for m in markers))
    (folder / "sidecar.json").write_text(json.dumps(sidecar or {"node": {"gpu_devices": 0, "environment": {}}}))
    return join(folder / "trace.csv", folder / "markers.jsonl", folder / "energy.csv")


def test_carbon_is_weighted_by_energy_not_by_time(tmp_path: Path) -> None:
    """1 h at 100 W on a 100 g/kWh grid, then 1 h at 1000 W on 500 g/kWh: 510 g, not 330 g."""
    from svbench.energy.carbon import Factor, Intensity
    from svbench.energy.join import join
    from svbench.instrument.sensors.base import Reading
    from svbench.study.summary import _carbon_g

    series = tmp_path / "grid.csv"
    start = pd.Timestamp(T0, unit="ns", tz="UTC")
    series.write_text(f"timestamp,gco2e_per_kwh\n{start.isoformat()},100\n"
                      f"{(start + pd.Timedelta(hours=1)).isoformat()},500\n")
    _job(tmp_path / "job", lambda t: [Reading("node", "energy", 100.0 * min(t, 3600) + 1000.0 * max(t - 3600, 0),
                                              "J", "node")],
         [{"event": "begin", "session": "s1", "t": 0}, {"event": "end", "status": 0, "t": 7200}])
    intensity = Intensity.from_config({"series": str(series), "source": "grid"})
    frame = join(tmp_path / "job" / "trace.csv", tmp_path / "job" / "markers.jsonl", None, intensity)
    assert _carbon_g(frame, "job", Factor(1.0, "ratio", "s"), intensity) == pytest.approx(510.0, rel=1e-3)
    assert energy_of(frame, "job")["energy_j"] == pytest.approx(1.1 * 3.6e6)
    late = Intensity.from_config({"series": str(series), "source": "grid"})
    with pytest.raises(ValueError, match="grid.csv"):  # a job a day later is outside the series
        late.at(np.array([T0 + 86400 * 10**9]))


def test_idle_and_dynamic_energy_and_a_gpu_job_without_gpu_readings(tmp_path: Path) -> None:
    from svbench.instrument.sensors.base import Reading

    frame = _job(tmp_path / "job", lambda t: [Reading("package-0", "energy", 50.0 * t + 50.0 * max(t - 100, 0),
                                                      "J", "cpu")],
                 [{"event": "begin", "session": "s1", "t": 0},
                  {"event": "start", "phase": "idle_baseline", "index": None, "pid": 1, "t": 0},
                  {"event": "stop", "phase": "idle_baseline", "index": None, "pid": 1, "ok": True, "t": 100},
                  {"event": "end", "status": 0, "t": 1000}], seconds=1000)
    e = energy_of(frame, "job")
    assert e["seconds"] == pytest.approx(900.0) and e["energy_j"] == pytest.approx(100.0 * 900)
    assert e["idle_j"] == pytest.approx(50.0 * 900) and e["dynamic_j"] == pytest.approx(50.0 * 900)
    assert e["basis"] == "measured"
    assert energy_of(frame, "job", gpus=None)["basis"] == "partial"  # GPUs given, none read


def test_missing_energy_stays_missing_in_embodied_carbon(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,), energy=False)
    frame = pd.DataFrame(summary_rows(tmp_path / "results", config))
    assert frame["embodied_co2e_g"].isna().all() and frame["train_energy_kwh"].isna().all()


def test_inference_figures_share_one_basis_per_trial_list(tmp_path: Path) -> None:
    config = fake_study(tmp_path, seeds=(0,))
    row = pd.DataFrame(summary_rows(tmp_path / "results", config)).iloc[0]
    # embed_test E × (3 s that "syn" uses / 8 s of test audio) + the list's own scoring
    e_list = row["embed_test_energy_j"] * 3 / 8 + row["score_energy_j"]
    assert row["inference_j_per_trial_syn"] == pytest.approx(e_list / 20)
    assert row["inference_kj_per_audio_hour_syn"] == pytest.approx(e_list / 1e3 / (3 / 3600))
    assert row["inference_co2e_g_syn"] == pytest.approx(e_list / 3.6e6 * 1.2 * 100.0)
    assert row["inference_j_per_trial"] == pytest.approx(row["inference_j_per_trial_syn"])  # one list: the same
    assert row["embed_train_energy_j"] > 0  # the cohort and training mean, reported apart


def test_a_job_outside_the_series_is_refused_or_labelled(tmp_path: Path) -> None:
    from svbench.energy.carbon import Intensity
    from svbench.energy.join import join
    from svbench.instrument.sensors.base import Reading
    from svbench.study.summary import _edge_used

    series = tmp_path / "grid.csv"
    series.write_text("timestamp,gco2e_per_kwh\n2020-01-01T00:00:00Z,100\n2020-01-01T01:00:00Z,200\n")
    _job(tmp_path / "job", lambda t: [Reading("node", "power", 100.0, "W", "node")],
         [{"event": "begin", "session": "s1", "t": 0}, {"event": "end", "status": 0, "t": 600}], seconds=600)
    paths = tmp_path / "job" / "trace.csv", tmp_path / "job" / "markers.jsonl"
    with pytest.raises(ValueError, match="grid.csv: the grid intensity series covers"):
        join(*paths, None, Intensity.from_config({"series": str(series), "source": "grid"}))
    edge = Intensity.from_config({"series": str(series), "source": "grid", "outside": "edge"})
    frame = join(*paths, None, edge)
    assert (frame.loc[frame["sensor"] == "x", "intensity_g_per_kwh"] == 200.0).all() and _edge_used(frame)


def test_summary_shows_accuracy_intervals_per_job_and_over_seeds(tmp_path: Path) -> None:
    from svbench.layout import Layout

    config = fake_study(tmp_path)
    layout = Layout(str(tmp_path / "results"))
    write_score_replicates(tmp_path, config)
    frame = build_summary(layout, config | {"uncertainty": {"resamples": 50}}, tmp_path / "study")
    low, high = frame["eer_cosine_syn_low"], frame["eer_cosine_syn_high"]
    assert (low < high).all() and (low > 0).all() and (high < 100).all()  # EER in %
    by = pd.read_csv(tmp_path / "study/summary_by_arch.csv")
    assert {"eer_cosine_syn_low", "eer_cosine_syn_high"} <= set(by.columns)
    assert "eer_cosine_syn_low_mean" not in by.columns  # bounds are not averaged over seeds
    assert (by["eer_cosine_syn_low"] < by["eer_cosine_syn_high"]).all()
    assert "[" in (tmp_path / "study/summary_by_arch.html").read_text()


def test_training_energy_has_an_interval_from_the_sensor_tolerances(tmp_path: Path) -> None:
    config = fake_study(tmp_path)  # the fake jobs are measured by RAPL only
    frame = build_summary(tmp_path / "results", config | {"energy": {"rapl": {"tolerance": 0.2}}}, tmp_path / "s")
    energy, low, high = frame["train_energy_kwh"], frame["train_energy_kwh_low"], frame["train_energy_kwh_high"]
    # a 20 % 95 % half-width, a little more where a job's coverage leaves a gap (it can only add energy)
    assert (((high - low) / 2 / energy) > 0.18).all() and (((high - low) / 2 / energy) < 0.3).all()
    assert (low < energy).all() and (energy < high).all()
    tight = build_summary(tmp_path / "results", config | {"energy": {"rapl": {"tolerance": 0.01}}}, tmp_path / "t")
    assert ((tight["train_energy_kwh_high"] - tight["train_energy_kwh_low"]) < (high - low)).all()


def test_provenance_names_the_as_norm_cohort(tmp_path: Path) -> None:
    import json

    from svbench.layout import Layout
    from svbench.study.summary import provenance

    config = fake_study(tmp_path)
    layout = Layout(str(tmp_path / "results"))
    for spec in config["grid"]:
        for seed in config["seeds"]:
            path = Path(layout.metrics(spec["name"], seed))
            m = json.loads(path.read_text())
            path.write_text(json.dumps(m | {"cohort_size": 5994, "cohort_kind": "speaker_mean",
                                            "cohort_utts": 1092009, "top_n": 300}))
    table = provenance(config, tmp_path / "results")
    row = table[table["item"] == "AS-norm cohort"]
    assert len(row) == 1  # one cohort for every job
    assert row.iloc[0]["value"] == "speaker_mean: 5994 speakers from 1092009 utterances, top 300"
    assert "WeSpeaker" in row.iloc[0]["source"] and f"{len(config['grid']) * 2} job(s)" in row.iloc[0]["source"]


def test_the_summary_opens_each_jobs_energy_once(tmp_path, monkeypatch) -> None:
    """The study is loaded once (issue 27): build_summary walked the jobs four times, reading every energy.csv
    for the summary, the phases, the closure and the provenance tables."""
    from collections import Counter

    from fakes.study import fake_study

    import svbench.study.summary as summary

    config = fake_study(tmp_path, seeds=(0, 1))
    opened: Counter = Counter()
    real = summary.read_energy

    def counted(path):
        opened[str(path)] += 1
        return real(path)

    monkeypatch.setattr(summary, "read_energy", counted)
    summary.build_summary(tmp_path / "results", config, tmp_path / "study")
    assert opened and set(opened.values()) == {1}, opened.most_common(3)
