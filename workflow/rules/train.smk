# More than one process per job (training.processes, one per GPU): torchrun starts them on the node
# and svbench trains with DistributedDataParallel; only rank 0 writes.
NPROC = config["training"]["processes"]
LAUNCH = f"torchrun --standalone --nproc-per-node {NPROC} --no-python " if NPROC > 1 else ""


# Training is measured: `svbench monitor` runs the sidecar beside it. checkpoint.pt and the energy
# trace are deliberately not declared outputs: Snakemake deletes the outputs of a failed job, and a
# preempted job must keep both its checkpoint and the energy its attempt already spent.
rule train:
    input:
        energy=ENERGY_CONFIG,
        features="results/features/train/index.tsv",
        manifest="results/corpus/train.tsv",
    output:
        model="results/models/{arch}/seed{seed}/model.pt",
        history="results/models/{arch}/seed{seed}/history.csv",
        spec="results/models/{arch}/seed{seed}/spec.json",
    params:
        arch=arch_json,
        recipe=json.dumps(config["training"]),
    threads: config["training"]["threads"]
    resources:
        # one GPU per training process; on SLURM the plugin turns this into --gpus=N
        gpu=NPROC,
    log:
        "results/logs/train/{arch}/seed{seed}.log",
    conda:
        ENV
    shell:
        monitor("train")
        + " "
        + LAUNCH
        + "svbench train --features results/features/train --manifest {input.manifest}"
        " --arch {params.arch:q} --recipe {params.recipe:q} --seed {wildcards.seed}"
        " --out results/models/{wildcards.arch}/seed{wildcards.seed} > {log} 2>&1"
