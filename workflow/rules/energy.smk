localrules:
    energy_config,


# The energy config as the file `svbench monitor --config` reads. A `run:` block calling the library, not a shell
# command: the config (BMC user, the tool's arguments) must not pass through any command line. Local: it is a
# file write, not a job; it writes nothing in a dry run.
rule energy_config:
    output:
        ENERGY_CONFIG,
    params:
        digest=ENERGY_DIGEST,
    log:
        LAYOUT.log("energy", "config"),
    run:
        write_energy_config(config["energy"], output[0])


# The energy of each measured job. Its product (LAYOUT.step_output: model, test embeddings, metrics)
# proves the trace and markers are final; they are not declared outputs (see train.smk).
rule energy_join:
    input:
        product=lambda w: LAYOUT.step_output(w.step, w.arch, w.seed),
        # an intensity series weights each sample interval's energy by the intensity then in force
        series=[config["carbon"]["intensity"]["series"]] if config["carbon"]["intensity"].get("series") else [],
    output:
        LAYOUT.energy("{step}", "{arch}", "{seed}"),
    params:
        folder=lambda w: LAYOUT.energy_dir(w.step, w.arch, w.seed),
        # a multi-node training: one folder per node, each joined on its own clock, then summed
        nodes=step_nodes,
        intensity=json.dumps(config["carbon"]["intensity"]),
    log:
        LAYOUT.log("energy", "{step}", "{arch}", "seed{seed}"),
    conda:
        ENV
    shell:
        "svbench energy join --dir {params.folder:q} --nodes {params.nodes}"
        " --intensity {params.intensity:q} --out {output:q} > {log:q} 2>&1"


# The energy of each measured job of the study's other work (data preparation, the study's analysis): one node.
rule energy_join_work:
    wildcard_constraints:
        step=one_of(WORK_STEPS),
        job=r"[^/]+",
    input:
        product=work_product,
        series=[config["carbon"]["intensity"]["series"]] if config["carbon"]["intensity"].get("series") else [],
    output:
        LAYOUT.work_energy("{step}", "{job}"),
    params:
        folder=lambda w: LAYOUT.work_energy_dir(w.step, w.job),
        intensity=json.dumps(config["carbon"]["intensity"]),
    log:
        LAYOUT.log("energy", "{step}", "{job}"),
    conda:
        ENV
    shell:
        "svbench energy join --dir {params.folder:q} --nodes 1 --intensity {params.intensity:q} --out {output:q}"
        " > {log:q} 2>&1"


rule energy_emissions:
    input:
        LAYOUT.energy("{step}", "{arch}", "{seed}"),
    output:
        codecarbon=LAYOUT.emissions("{step}", "{arch}", "{seed}"),
        svbench=LAYOUT.emissions_svbench("{step}", "{arch}", "{seed}"),
    params:
        sidecar=lambda w: LAYOUT.sidecar(w.step, w.arch, w.seed),
        carbon=json.dumps(config["carbon"]),
    log:
        LAYOUT.log("energy", "{step}", "{arch}", "seed{seed}.emissions"),
    conda:
        ENV
    shell:
        "svbench energy emissions --energy {input:q} --sidecar {params.sidecar:q} --carbon {params.carbon:q}"
        " --project 'svbench {wildcards.step} {wildcards.arch} seed{wildcards.seed}' --out {output.codecarbon:q}"
        " --svbench-out {output.svbench:q} > {log:q} 2>&1"
