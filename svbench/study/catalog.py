"""The study's figures by name, with the report category each one is filed under: the one list that
``svbench study figures`` draws and ``workflow/rules/report.smk`` declares (each ``results/study/figures/
NAME.png``, caption ``workflow/report/NAME.rst``; the timelines share ``power_timeline.rst``). Kept apart
from ``figures`` so that reading the workflow does not import matplotlib."""

FIGURES = {
    "eer_vs_training_energy": "Accuracy",
    "inference_energy_vs_eer": "Accuracy",
    "stage_distribution": "Accuracy",
    "energy_by_component": "Energy",
    "energy_by_phase": "Energy",
    "idle_vs_dynamic": "Energy",
    "energy_vs_size": "Energy",
    "power_timeline_train": "Energy",
    "power_timeline_embed": "Energy",
    "power_timeline_score": "Energy",
}
