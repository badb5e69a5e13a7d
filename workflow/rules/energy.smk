# The product of each measured step: the job's own output proves the trace and markers are final.
STEP_OUTPUT = {
    "train": "results/models/{arch}/seed{seed}/model.pt",
    "embed": "results/embeddings/{arch}/seed{seed}/test.npz",
    "score": "results/scores/{arch}/seed{seed}/metrics.json",
}


rule energy_join:
    input:
        product=lambda w: STEP_OUTPUT[w.step].format(arch=w.arch, seed=w.seed),
        # an intensity series weights each sample interval's energy by the intensity then in force
        series=[config["carbon"]["intensity"]["series"]] if config["carbon"]["intensity"].get("series") else [],
    output:
        "results/energy/{step}/{arch}/seed{seed}/energy.csv",
    params:
        folder="results/energy/{step}/{arch}/seed{seed}",
        intensity=json.dumps(config["carbon"]["intensity"]),
    log:
        "results/logs/energy/{step}/{arch}/seed{seed}.log",
    conda:
        ENV
    shell:
        "svbench energy join --trace {params.folder}/trace.csv --markers {params.folder}/markers.jsonl"
        " --intensity {params.intensity:q} --out {output} > {log} 2>&1"


rule energy_emissions:
    input:
        "results/energy/{step}/{arch}/seed{seed}/energy.csv",
    output:
        codecarbon="results/energy/{step}/{arch}/seed{seed}/emissions.csv",
        svbench="results/energy/{step}/{arch}/seed{seed}/emissions_svbench.csv",
    params:
        sidecar=lambda w, input: input[0].replace("energy.csv", "sidecar.json"),
        carbon=json.dumps(config["carbon"]),
    log:
        "results/logs/energy/{step}/{arch}/seed{seed}.emissions.log",
    conda:
        ENV
    shell:
        "svbench energy emissions --energy {input} --sidecar {params.sidecar} --carbon {params.carbon:q}"
        " --project 'svbench {wildcards.step} {wildcards.arch} seed{wildcards.seed}' --out {output.codecarbon}"
        " --svbench-out {output.svbench} > {log} 2>&1"
