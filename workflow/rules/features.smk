SHARDS = [f"{k:04d}" for k in range(config["features"]["shards"])]


rule features_shard:
    input:
        "results/corpus/{split}.tsv",
    output:
        npy="results/features/{split}/shard{shard}.npy",
        index="results/features/{split}/shard{shard}.index.tsv",
    params:
        n_mels=config["features"]["n_mels"],
        shards=len(SHARDS),
    log:
        "results/logs/features/{split}/shard{shard}.log",
    conda:
        ENV
    shell:
        "svbench features extract --manifest {input} --out results/features/{wildcards.split}"
        " --shard {wildcards.shard} --num-shards {params.shards} --n-mels {params.n_mels} > {log} 2>&1"


rule features_index:
    input:
        expand("results/features/{{split}}/shard{shard}.index.tsv", shard=SHARDS),
    output:
        "results/features/{split}/index.tsv",
    params:
        shards=len(SHARDS),
    log:
        "results/logs/features/{split}/index.log",
    conda:
        ENV
    shell:
        "svbench features index --out results/features/{wildcards.split} --num-shards {params.shards} > {log} 2>&1"
