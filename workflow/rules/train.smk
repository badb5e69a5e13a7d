# Training is measured: `svbench monitor` runs the sidecar beside it. checkpoint.pt and the energy
# trace are deliberately not declared outputs: Snakemake deletes the outputs of a failed job, and a
# preempted job must keep both its checkpoint and the energy its attempt already spent.
rule train:
    input:
        features="results/features/train/index.tsv",
        manifest="results/corpus/train.tsv",
    output:
        model="results/models/{arch}/seed{seed}/model.pt",
        history="results/models/{arch}/seed{seed}/history.csv",
        spec="results/models/{arch}/seed{seed}/spec.json",
    params:
        arch=arch_json,
        recipe=json.dumps(config["training"]),
        energy=energy_json(),
    threads: config["training"]["threads"]
    log:
        "results/logs/train/{arch}/seed{seed}.log",
    conda:
        ENV
    shell:
        monitor("train")
        + " svbench train --features results/features/train --manifest {input.manifest}"
        " --arch {params.arch:q} --recipe {params.recipe:q} --seed {wildcards.seed}"
        " --out results/models/{wildcards.arch}/seed{wildcards.seed} > {log} 2>&1"
