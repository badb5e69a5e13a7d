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
        csv=LAYOUT.study_file(SUMMARY, "csv"),
        html=report(LAYOUT.study_file(SUMMARY, "html"), category="Study", caption="../report/summary.rst"),
        tex=LAYOUT.study_file(SUMMARY, "tex"),
        by_arch=report(LAYOUT.study_file(SUMMARY_BY_ARCH, "html"), category="Study",
                       caption="../report/summary_by_arch.rst"),
        by_arch_csv=LAYOUT.study_file(SUMMARY_BY_ARCH, "csv"),
        phases=report(LAYOUT.study_file(PHASES, "html"), category="Energy", caption="../report/phases.rst"),
        phases_csv=LAYOUT.study_file(PHASES, "csv"),
        closure=report(LAYOUT.study_file(CLOSURE, "html"), category="Energy", caption="../report/closure.rst"),
        closure_csv=LAYOUT.study_file(CLOSURE, "csv"),
        carbon=report(LAYOUT.study_file(CARBON, "html"), category="Carbon", caption="../report/carbon.rst"),
        provenance=report(LAYOUT.study_file(PROVENANCE, "html"), category="Carbon", caption="../report/provenance.rst"),
        pareto=report(LAYOUT.study_file(PARETO, "html"), category="Study", caption="../report/pareto.rst"),
        pareto_csv=LAYOUT.study_file(PARETO, "csv"),
        differences=report(LAYOUT.study_file(DIFFERENCES, "html"), category="Study", caption="../report/differences.rst"),
        differences_csv=LAYOUT.study_file(DIFFERENCES, "csv"),
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
        summary=LAYOUT.study_file(SUMMARY, "csv"),
        phases=LAYOUT.study_file(PHASES, "csv"),
        by_arch=LAYOUT.study_file(SUMMARY_BY_ARCH, "csv"),
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
        results=lambda wildcards, input: LAYOUT.root_of(input.summary, LAYOUT.study_file(SUMMARY, "csv")),
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
        csv=LAYOUT.study_file(FOOTPRINT, "csv"),
        html=report(LAYOUT.study_file(FOOTPRINT, "html"), category="Footprint", caption="../report/footprint.rst"),
        tex=LAYOUT.study_file(FOOTPRINT, "tex"),
        rules=report(LAYOUT.study_file(FOOTPRINT_RULES, "html"), category="Footprint",
                     caption="../report/footprint_rules.rst"),
        rules_csv=LAYOUT.study_file(FOOTPRINT_RULES, "csv"),
        rules_tex=LAYOUT.study_file(FOOTPRINT_RULES, "tex"),
        jobs=LAYOUT.study_file(FOOTPRINT_JOBS, "csv"),
        figure=report(LAYOUT.study_file(FOOTPRINT, "png"), category="Footprint", caption="../report/footprint_figure.rst"),
        sentence=LAYOUT.study_file(FOOTPRINT, "txt"),
    params:
        # the results folder the declared inputs lie in
        results=lambda wildcards, input: LAYOUT.root_of(input.energy[0], STUDY_ENERGY[0]),
        out=output_folder("csv"),
        config=json.dumps({k: config[k] for k in ("carbon", "uncertainty")}
                          | {"energy": {"estimate": config["energy"]["estimate"]} | SENSOR_TOLERANCES}),
    log:
        LAYOUT.log("study", "footprint"),
    conda:
        ENV
    shell:
        "svbench study footprint --results {params.results:q} --energy {input.energy:q} {input.work:q}"
        " --config {params.config:q} --out {params.out:q}"
        " > {log:q} 2>&1"


rule study_report:
    input:
        summary=LAYOUT.study_file(SUMMARY, "csv"),
        pareto=LAYOUT.study_file(PARETO, "csv"),
        differences=LAYOUT.study_file(DIFFERENCES, "csv"),
        footprint=LAYOUT.study_file(FOOTPRINT, "txt"),
    output:
        html=report(LAYOUT.study_file(STUDY_PAGE, "html"), category="Study", caption="../report/study.rst"),
        model=LAYOUT.study_file(ENERGY_MODEL, "json"),
        table=LAYOUT.study_file(ENERGY_MODEL, "csv"),
        findings=LAYOUT.study_file(FINDINGS, "rst"),
    log:
        LAYOUT.log("study", "report"),
    conda:
        ENV
    shell:
        "svbench study report --summary {input.summary:q} --pareto {input.pareto:q}"
        " --differences {input.differences:q} --out {output.html:q} --findings-rst {output.findings:q}"
        " --model-json {output.model:q} --model-csv {output.table:q} --footprint {input.footprint:q} > {log:q} 2>&1"
