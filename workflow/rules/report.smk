# The study: tables, figures and the findings, each marked for `snakemake --report` with a caption
# (workflow/report/*.rst) that says how it was measured and what to beware of. The figures are those of
# svbench.study.catalog.FIGURES (imported in common.smk), the one list of them.
STUDY_ENERGY = expand(
    "results/energy/{step}/{arch}/seed{seed}/energy.csv", step=["train", "embed", "score"], arch=ARCHS, seed=SEEDS
)


rule study_summary:
    input:
        energy=STUDY_ENERGY,
        metrics=expand("results/scores/{arch}/seed{seed}/metrics.json", arch=ARCHS, seed=SEEDS),
        specs=expand("results/models/{arch}/seed{seed}/spec.json", arch=ARCHS, seed=SEEDS),
        # the inference figures: audio seconds of the test utterances each list uses
        test="results/corpus/test.tsv",
        trials=expand("results/corpus/trials/{name}.txt", name=TRIAL_LISTS),
    output:
        csv="results/study/summary.csv",
        html=report("results/study/summary.html", category="Study", caption="../report/summary.rst"),
        tex="results/study/summary.tex",
        by_arch=report("results/study/summary_by_arch.html", category="Study", caption="../report/summary_by_arch.rst"),
        by_arch_csv="results/study/summary_by_arch.csv",
        phases=report("results/study/phases.html", category="Energy", caption="../report/phases.rst"),
        phases_csv="results/study/phases.csv",
        closure=report("results/study/closure.html", category="Energy", caption="../report/closure.rst"),
        closure_csv="results/study/closure.csv",
        carbon=report("results/study/carbon.html", category="Carbon", caption="../report/carbon.rst"),
        provenance=report("results/study/provenance.html", category="Carbon", caption="../report/provenance.rst"),
    params:
        # the estimate's factors for the provenance table; the sensors' settings stay out of every command line
        config=json.dumps({k: config[k] for k in ("grid", "seeds", "carbon")}
                          | {"energy": {"estimate": config["energy"]["estimate"]}}),
    log:
        "results/logs/study/summary.log",
    conda:
        ENV
    shell:
        "svbench study summary --results results --config {params.config:q} --out results/study > {log} 2>&1"


rule study_figures:
    input:
        summary="results/study/summary.csv",
        phases="results/study/phases.csv",
        energy=STUDY_ENERGY,  # the traces behind the timelines are final once their energy is joined
    output:
        [
            report(
                f"results/study/figures/{name}.png",
                category=category,
                caption="../report/power_timeline.rst" if name.startswith("power_timeline") else f"../report/{name}.rst",
            )
            for name, category in FIGURES.items()
        ],
    log:
        "results/logs/study/figures.log",
    conda:
        ENV
    shell:
        "svbench study figures --summary {input.summary} --phases {input.phases} --results results"
        " --out results/study/figures > {log} 2>&1"


rule study_report:
    input:
        "results/study/summary.csv",
    output:
        html=report("results/study/study.html", category="Study", caption="../report/study.rst"),
        model="results/study/energy_model.json",
        table="results/study/energy_model.csv",
    log:
        "results/logs/study/report.log",
    conda:
        ENV
    shell:
        "svbench study report --summary {input} --out {output.html} --model-json {output.model}"
        " --model-csv {output.table} > {log} 2>&1"
