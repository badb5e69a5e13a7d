# More than one process per job (training.processes, one per GPU): torchrun starts them on the node
# and svbench trains with DistributedDataParallel; only rank 0 writes.
NPROC = config["training"]["processes"]
LAUNCH = ["torchrun", "--standalone", "--nproc-per-node", str(NPROC), "--no-python"] if NPROC > 1 else []


# Training is measured: `svbench monitor` runs the sidecar beside it. checkpoint.pt and the energy
# trace are deliberately not declared outputs: Snakemake deletes the outputs of a failed job, and a
# preempted job must keep both its checkpoint and the energy its attempt already spent.
rule train:
    wildcard_constraints:
        arch=one_of(ARCHS),  # the fine-tuned models are made by finetune
    input:
        energy=ENERGY_CONFIG,
        features=LAYOUT.feature_index("train"),
        manifest=LAYOUT.manifest("train"),
    output:
        model=LAYOUT.model("{arch}", "{seed}"),
        history=LAYOUT.history("{arch}", "{seed}"),
        spec=LAYOUT.spec("{arch}", "{seed}"),
    params:
        energy_dir=energy_dir("train"),
        baseline=BASELINE_S,
        launch=LAUNCH,
        features=input_folder("features"),
        out=output_folder("model"),
        arch=arch_json,
        recipe=json.dumps(config["training"]),
    threads: config["training"]["threads"]
    resources:
        # one GPU per training process; on SLURM the plugin turns this into --gpus=N
        gpu=NPROC,
    log:
        LAYOUT.log("train", "{arch}", "seed{seed}"),
    conda:
        ENV
    shell:
        "svbench monitor --out {params.energy_dir:q} --baseline {params.baseline:q} --config {input.energy:q} --"
        " {params.launch:q} svbench train --features {params.features:q} --manifest {input.manifest:q}"
        " --arch {params.arch:q} --recipe {params.recipe:q} --seed {wildcards.seed}"
        " --out {params.out:q} > {log:q} 2>&1"


# Large-margin fine-tuning (config large_margin, on in config/voxceleb.yaml): the trained model again with a
# large margin on long crops, as the model {arch} = <backbone>+lm with its own folder. Measured like
# training, in its own energy folder (its own step and row: training energy); it checkpoints and resumes alike.
rule finetune:
    wildcard_constraints:
        arch=one_of(TUNED),
    input:
        energy=ENERGY_CONFIG,
        init=lambda wildcards: LAYOUT.model(backbone_of(wildcards.arch), wildcards.seed),
        features=LAYOUT.feature_index("train"),
        manifest=LAYOUT.manifest("train"),
    output:
        model=LAYOUT.model("{arch}", "{seed}"),
        history=LAYOUT.history("{arch}", "{seed}"),
        spec=LAYOUT.spec("{arch}", "{seed}"),
    params:
        energy_dir=energy_dir("finetune"),
        baseline=BASELINE_S,
        launch=LAUNCH,
        features=input_folder("features"),
        out=output_folder("model"),
        arch=arch_json,
        recipe=json.dumps(config["training"]),
        large_margin=json.dumps(config["large_margin"]),
    threads: config["training"]["threads"]
    resources:
        gpu=NPROC,
    log:
        LAYOUT.log("finetune", "{arch}", "seed{seed}"),
    conda:
        ENV
    shell:
        "svbench monitor --out {params.energy_dir:q} --baseline {params.baseline:q} --config {input.energy:q} --"
        " {params.launch:q} svbench train --features {params.features:q} --manifest {input.manifest:q}"
        " --arch {params.arch:q} --recipe {params.recipe:q} --large-margin {params.large_margin:q}"
        " --init {input.init:q} --seed {wildcards.seed} --out {params.out:q} > {log:q} 2>&1"
