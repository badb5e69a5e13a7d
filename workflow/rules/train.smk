# A training job runs on training.nodes nodes × training.processes processes (one per GPU; a grid entry may
# set its own). Several nodes: `srun` starts one `svbench monitor` per node, each measuring its node into
# its own folder (node0, node1, ...) around `svbench launch`, the node's torchrun; svbench trains with
# DistributedDataParallel and only rank 0 writes the model. See svbench.training.launch.


# Training is measured: `svbench monitor` runs the sidecar beside it. checkpoint.pt and the energy
# trace are deliberately not declared outputs: Snakemake deletes the outputs of a failed job, and a
# preempted job must keep both its checkpoint and the energy its attempt already spent.
rule train:
    wildcard_constraints:
        arch=one_of(ARCHS),  # the fine-tuned models are made by finetune
    input:
        energy_config=ENERGY_CONFIG,
        features=LAYOUT.feature_index("train"),
        manifest=LAYOUT.manifest("train"),
        init=fine_tuned_from,  # none for a trained model
    output:
        model=LAYOUT.model("{arch}", "{seed}"),
        history=LAYOUT.history("{arch}", "{seed}"),
        spec=LAYOUT.spec("{arch}", "{seed}"),
    params:
        energy_dir=energy_dir("train"),
        nodes=training_nodes,
        srun=node_launch,
        launch=process_launch_of,
        features=input_folder("features"),
        out=output_folder("model"),
        arch=arch_json,
        recipe=recipe_json,
        fine_tuning=fine_tuning_args,  # none for a trained model
    threads: config["training"]["threads"]
    resources:
        # one GPU per training process; several nodes: --nodes, --gres per node, and `mpi` so that the
        # plugin runs the command as it is and its srun reaches every node (svbench.training.launch)
        gpu=training_resource("gpu"),
        gres=training_resource("gres"),
        nodes=training_resource("nodes"),
        mpi=training_resource("mpi"),
        tasks=training_resource("tasks"),
        tasks_per_gpu=training_resource("tasks_per_gpu"),
    log:
        LAYOUT.log("train", "{arch}", "seed{seed}"),
    conda:
        ENV
    shell:
        "{params.srun:q} svbench monitor --out {params.energy_dir:q} --nodes {params.nodes}"
        " --config {input.energy_config:q} -- {params.launch:q} svbench train --features {params.features:q} --manifest {input.manifest:q}"
        " --arch {params.arch:q} --recipe {params.recipe:q} {params.fine_tuning:q} --seed {wildcards.seed}"
        " --out {params.out:q} > {log:q} 2>&1"


# Large-margin fine-tuning (config large_margin, on in config/voxceleb.yaml): the trained model again with a
# large margin on long crops, as the model {arch} = <backbone>+lm with its own folder. The training rule itself
# (its inputs and arguments add the backbone's model and --large-margin for a fine-tuned model), measured in its
# own energy folder (its own step and row: training energy); it checkpoints and resumes alike.
use rule train as finetune with:
    wildcard_constraints:
        arch=one_of(TUNED),
    params:
        energy_dir=energy_dir("finetune"),
    log:
        LAYOUT.log("finetune", "{arch}", "seed{seed}"),
