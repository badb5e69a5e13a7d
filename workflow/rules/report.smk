# The study: tables, figures and the findings, each marked for `snakemake --report` with a caption
# (workflow/report/*.rst) that says how it was measured and what to beware of. The figures are those of
# svbench.study.catalog.FIGURES (imported in common.smk), the one list of them.
STUDY_JOBS = list(LAYOUT.jobs(ARCHS, SEEDS, LARGE_MARGIN))  # every (model, seed, step) of the grid
STUDY_ENERGY = [LAYOUT.energy(job.step, job.model.name, job.seed) for job in STUDY_JOBS]


rule study_summary:
    input:
        energy=STUDY_ENERGY,
        energy_config=ancient(ENERGY_CONFIG),
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
        energy_dir=work_energy_dir(LAYOUT.study_job("summary")),
        # the estimate's factors for the provenance table; the sensors' settings stay out of every command line
        config=json.dumps({k: config[k] for k in ("grid", "seeds", "carbon", "uncertainty", "large_margin")}
                          | {"energy": {"estimate": config["energy"]["estimate"]} | SENSOR_TOLERANCES}),
    log:
        LAYOUT.log("study", "summary"),
    conda:
        ENV
    shell:
        measured(
            "svbench study summary --results {params.results:q} --config {params.config:q} --out {params.out:q}"
            " > {log:q} 2>&1",
            idle_baseline=False,
        )


rule study_figures:
    input:
        summary=LAYOUT.study("summary.csv"),
        phases=LAYOUT.study("phases.csv"),
        by_arch=LAYOUT.study("summary_by_arch.csv"),
        energy=STUDY_ENERGY,  # the traces behind the timelines are final once their energy is joined
        energy_config=ancient(ENERGY_CONFIG),
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
        energy_dir=work_energy_dir(LAYOUT.study_job("figures")),
    log:
        LAYOUT.log("study", "figures"),
    conda:
        ENV
    shell:
        measured(
            "svbench study figures --summary {input.summary:q} --phases {input.phases:q} --by-arch {input.by_arch:q}"
            " --results {params.results:q} --out {params.out:q} > {log:q} 2>&1",
            idle_baseline=False,
        )


# The whole study's footprint: every measured job's energy.csv (data preparation, the models' steps, the study's
# summary and figures), every attempt. This job and the report's read small tables and are not measured.
rule study_footprint:
    input:
        energy=STUDY_ENERGY,
        work=work_energy_files,
    output:
        csv=LAYOUT.study("footprint.csv"),
        html=report(LAYOUT.study("footprint.html"), category="Footprint", caption="../report/footprint.rst"),
        tex=LAYOUT.study("footprint.tex"),
        rules=report(LAYOUT.study("footprint_rules.html"), category="Footprint",
                     caption="../report/footprint_rules.rst"),
        rules_csv=LAYOUT.study("footprint_rules.csv"),
        rules_tex=LAYOUT.study("footprint_rules.tex"),
        jobs=LAYOUT.study("footprint_jobs.csv"),
        figure=report(LAYOUT.study("footprint.png"), category="Footprint", caption="../report/footprint_figure.rst"),
        sentence=LAYOUT.study("footprint.txt"),
    params:
        # the results folder the declared inputs lie in
        results=lambda wildcards, input: LAYOUT.root_of(input.energy[0], STUDY_ENERGY[0]),
        out=output_folder("csv"),
        config=json.dumps({k: config[k] for k in ("carbon",)}
                          | {"energy": {"estimate": config["energy"]["estimate"]} | SENSOR_TOLERANCES}),
    log:
        LAYOUT.log("study", "footprint"),
    conda:
        ENV
    shell:
        "svbench study footprint --results {params.results:q} --config {params.config:q} --out {params.out:q}"
        " > {log:q} 2>&1"


rule study_report:
    input:
        summary=LAYOUT.study("summary.csv"),
        pareto=LAYOUT.study("pareto.csv"),
        differences=LAYOUT.study("differences.csv"),
        footprint=LAYOUT.study("footprint.txt"),
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
        " --model-json {output.model:q} --model-csv {output.table:q} --footprint {input.footprint:q} > {log:q} 2>&1"
