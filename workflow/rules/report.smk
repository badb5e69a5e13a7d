# The study: tables, figures and the findings, each marked for `snakemake --report` with a caption
# (workflow/report/*.rst) that says how it was measured and what to beware of. The figures are those of
# svbench.study.catalog.FIGURES (imported in common.smk), the one list of them.
STUDY_JOBS = list(LAYOUT.jobs(ARCHS, SEEDS, LARGE_MARGIN))  # every (model, seed, step) of the grid
STUDY_ENERGY = [LAYOUT.energy(job.step, job.arch, job.seed) for job in STUDY_JOBS]


rule study_summary:
    input:
        energy=STUDY_ENERGY,
        metrics=[LAYOUT.metrics(model, seed) for model in MODELS for seed in SEEDS],
        specs=[LAYOUT.spec(model, seed) for model in MODELS for seed in SEEDS],
        # the accuracy intervals: each job's speaker-bootstrap replicates
        intervals=[LAYOUT.replicates(model, seed) for model in MODELS for seed in SEEDS],
        # the inference figures: audio seconds of the test utterances each list uses
        test=LAYOUT.manifest("test"),
        trials=[LAYOUT.trials(name) for name in TRIAL_LISTS],
    output:
        csv=LAYOUT.study("summary.csv"),
        html=report(LAYOUT.study("summary.html"), category="Study", caption="../report/summary.rst"),
        tex=LAYOUT.study("summary.tex"),
        by_arch=report(LAYOUT.study("summary_by_arch.html"), category="Study",
                       caption="../report/summary_by_arch.rst"),
        by_arch_csv=LAYOUT.study("summary_by_arch.csv"),
        phases=report(LAYOUT.study("phases.html"), category="Energy", caption="../report/phases.rst"),
        phases_csv=LAYOUT.study("phases.csv"),
        closure=report(LAYOUT.study("closure.html"), category="Energy", caption="../report/closure.rst"),
        closure_csv=LAYOUT.study("closure.csv"),
        carbon=report(LAYOUT.study("carbon.html"), category="Carbon", caption="../report/carbon.rst"),
        provenance=report(LAYOUT.study("provenance.html"), category="Carbon", caption="../report/provenance.rst"),
        pareto=report(LAYOUT.study("pareto.html"), category="Study", caption="../report/pareto.rst"),
        pareto_csv=LAYOUT.study("pareto.csv"),
        differences=report(LAYOUT.study("differences.html"), category="Study", caption="../report/differences.rst"),
        differences_csv=LAYOUT.study("differences.csv"),
    params:
        # the study reads the results folder its declared inputs lie in
        results=lambda wildcards, input: LAYOUT.root_of(input.test, LAYOUT.manifest("test")),
        out=output_folder("csv"),
        # the estimate's factors for the provenance table; the sensors' settings stay out of every command line
        config=json.dumps({k: config[k] for k in ("grid", "seeds", "carbon", "uncertainty", "large_margin")}
                          | {"energy": {"estimate": config["energy"]["estimate"]} | SENSOR_TOLERANCES}),
    log:
        LAYOUT.log("study", "summary"),
    conda:
        ENV
    shell:
        "svbench study summary --results {params.results:q} --config {params.config:q} --out {params.out:q}"
        " > {log:q} 2>&1"


rule study_figures:
    input:
        summary=LAYOUT.study("summary.csv"),
        phases=LAYOUT.study("phases.csv"),
        by_arch=LAYOUT.study("summary_by_arch.csv"),
        energy=STUDY_ENERGY,  # the traces behind the timelines are final once their energy is joined
    output:
        [
            report(
                LAYOUT.figure(name),
                category=category,
                caption="../report/power_timeline.rst" if name.startswith("power_timeline") else f"../report/{name}.rst",
            )
            for name, category in FIGURES.items()
        ],
    params:
        # the traces behind the timelines lie in the results folder of the declared inputs
        results=lambda wildcards, input: LAYOUT.root_of(input.summary, LAYOUT.study("summary.csv")),
        out=lambda wildcards, output: os.path.dirname(output[0]),
    log:
        LAYOUT.log("study", "figures"),
    conda:
        ENV
    shell:
        "svbench study figures --summary {input.summary:q} --phases {input.phases:q} --by-arch {input.by_arch:q}"
        " --results {params.results:q} --out {params.out:q} > {log:q} 2>&1"


rule study_report:
    input:
        summary=LAYOUT.study("summary.csv"),
        pareto=LAYOUT.study("pareto.csv"),
        differences=LAYOUT.study("differences.csv"),
    output:
        html=report(LAYOUT.study("study.html"), category="Study", caption="../report/study.rst"),
        model=LAYOUT.study("energy_model.json"),
        table=LAYOUT.study("energy_model.csv"),
        findings=LAYOUT.study("findings.rst"),
    log:
        LAYOUT.log("study", "report"),
    conda:
        ENV
    shell:
        "svbench study report --summary {input.summary:q} --pareto {input.pareto:q}"
        " --differences {input.differences:q} --out {output.html:q} --findings-rst {output.findings:q}"
        " --model-json {output.model:q} --model-csv {output.table:q} > {log:q} 2>&1"
