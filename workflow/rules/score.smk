rule embed:
    input:
        energy_config=ENERGY_CONFIG,
        model=LAYOUT.model("{arch}", "{seed}"),
        test=LAYOUT.feature_index("test"),
        train=LAYOUT.feature_index("train"),
        test_manifest=LAYOUT.manifest("test"),
        train_manifest=LAYOUT.manifest("train"),
    output:
        test=LAYOUT.embeddings("{arch}", "{seed}", "test"),
        train=LAYOUT.embeddings("{arch}", "{seed}", "train"),
    params:
        energy_dir=energy_dir("embed"),
        test_features=input_folder("test"),
        train_features=input_folder("train"),
        out=output_folder("test"),
        embedding=json.dumps(config["embedding"]),
    threads: config["training"]["threads"]
    log:
        LAYOUT.log("embed", "{arch}", "seed{seed}"),
    conda:
        ENV
    shell:
        measured(
            "svbench embed --model {input.model:q} --test-features {params.test_features:q}"
            " --test-manifest {input.test_manifest:q} --train-features {params.train_features:q}"
            " --train-manifest {input.train_manifest:q} --embedding {params.embedding:q} --seed {wildcards.seed}"
            " --out {params.out:q} > {log:q} 2>&1"
        )


rule score:
    input:
        energy_config=ENERGY_CONFIG,
        test=LAYOUT.embeddings("{arch}", "{seed}", "test"),
        train=LAYOUT.embeddings("{arch}", "{seed}", "train"),
        trials=[LAYOUT.trials(name) for name in TRIAL_LISTS],
    output:
        metrics=LAYOUT.metrics("{arch}", "{seed}"),
        scores=[LAYOUT.scores("{arch}", "{seed}", name) for name in TRIAL_LISTS],
    params:
        energy_dir=energy_dir("score"),
        embeddings=input_folder("test"),
        # NAME=PATH of every trial list, the paths of the declared inputs
        trials=lambda wildcards, input: [f"{name}={path}" for name, path in zip(TRIAL_LISTS, input.trials)],
        out=output_folder("metrics"),
        scoring=json.dumps(config["scoring"]),
    log:
        LAYOUT.log("score", "{arch}", "seed{seed}"),
    conda:
        ENV
    shell:
        measured(
            "svbench score --embeddings {params.embeddings:q} --trials {params.trials:q} --scoring {params.scoring:q}"
            " --out {params.out:q} > {log:q} 2>&1"
        )


# The speaker bootstrap of every list and back-end: measured as the study's work (its own step "intervals", in the
# footprint, not in the model's inference energy: an analysis, not inference); the draws depend on the list and
# uncertainty.seed only, so the replicates of two models are paired.
rule score_intervals:
    input:
        scores=[LAYOUT.scores("{arch}", "{seed}", name) for name in TRIAL_LISTS],
        manifest=LAYOUT.manifest("test"),
        energy_config=ancient(ENERGY_CONFIG),
    output:
        replicates=LAYOUT.replicates("{arch}", "{seed}"),
        intervals=LAYOUT.intervals("{arch}", "{seed}"),
    params:
        scores=lambda wildcards, input: [f"{name}={path}" for name, path in zip(TRIAL_LISTS, input.scores)],
        settings=json.dumps(config["uncertainty"]),
        energy_dir=work_energy_dir(LAYOUT.intervals_job),
    log:
        LAYOUT.log("score", "{arch}", "seed{seed}.intervals"),
    conda:
        ENV
    shell:
        measured(
            "svbench intervals --scores {params.scores:q} --manifest {input.manifest:q} --settings {params.settings:q}"
            " --out {output.replicates:q} > {log:q} 2>&1",
            idle_baseline=False,
        )
