import json

SHARDS = [f"{k:04d}" for k in range(config["features"]["shards"])]


rule features_shard:
    input:
        manifest=LAYOUT.manifest("{split}"),
        energy_config=ancient(ENERGY_CONFIG),
    output:
        npy=LAYOUT.feature_shard("{split}", "{shard}", "npy"),
        index=LAYOUT.feature_shard("{split}", "{shard}", "index"),
    params:
        features=json.dumps(config["features"]),
        out=output_folder("index"),
        energy_dir=work_energy_dir(LAYOUT.features_job),
    log:
        LAYOUT.log("features", "{split}", "shard{shard}"),
    conda:
        ENV
    shell:
        measured(
            "svbench features extract --manifest {input.manifest} --out {params.out:q}"
            " --shard {wildcards.shard} --features {params.features:q} > {log} 2>&1",
            idle_baseline=False,
        )


rule features_index:
    input:
        [LAYOUT.feature_shard("{split}", shard, "index") for shard in SHARDS],
    output:
        index=LAYOUT.feature_index("{split}"),
    params:
        features=json.dumps(config["features"]),
        out=output_folder("index"),
    log:
        LAYOUT.log("features", "{split}", "index"),
    conda:
        ENV
    shell:
        "svbench features index --out {params.out:q} --features {params.features:q} > {log} 2>&1"
