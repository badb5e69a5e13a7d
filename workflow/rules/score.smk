rule embed:
    input:
        energy=ENERGY_CONFIG,
        model="results/models/{arch}/seed{seed}/model.pt",
        test="results/features/test/index.tsv",
        train="results/features/train/index.tsv",
        test_manifest="results/corpus/test.tsv",
        train_manifest="results/corpus/train.tsv",
    output:
        test="results/embeddings/{arch}/seed{seed}/test.npz",
        train="results/embeddings/{arch}/seed{seed}/train.npz",
    params:
        crop=config["embedding"]["crop_frames"],
        device=config["embedding"]["device"],
    threads: config["training"]["threads"]
    log:
        "results/logs/embed/{arch}/seed{seed}.log",
    conda:
        ENV
    shell:
        monitor("embed")
        + " svbench embed --model {input.model} --test-features results/features/test"
        " --test-manifest {input.test_manifest} --train-features results/features/train"
        " --train-manifest {input.train_manifest} --crop-frames {params.crop} --seed {wildcards.seed}"
        " --device {params.device:q} --out results/embeddings/{wildcards.arch}/seed{wildcards.seed} > {log} 2>&1"


rule score:
    input:
        energy=ENERGY_CONFIG,
        test="results/embeddings/{arch}/seed{seed}/test.npz",
        train="results/embeddings/{arch}/seed{seed}/train.npz",
        trials=expand("results/corpus/trials/{name}.txt", name=TRIAL_LISTS),
    output:
        metrics="results/scores/{arch}/seed{seed}/metrics.json",
        scores=expand("results/scores/{{arch}}/seed{{seed}}/{name}.tsv", name=TRIAL_LISTS),
    params:
        trials=" ".join(f"{name}=results/corpus/trials/{name}.txt" for name in TRIAL_LISTS),
        top_n=config["scoring"]["top_n"],
    log:
        "results/logs/score/{arch}/seed{seed}.log",
    conda:
        ENV
    shell:
        monitor("score")
        + " svbench score --embeddings results/embeddings/{wildcards.arch}/seed{wildcards.seed}"
        " --trials {params.trials} --top-n {params.top_n}"
        " --out results/scores/{wildcards.arch}/seed{wildcards.seed} > {log} 2>&1"
