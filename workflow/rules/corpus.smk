# The corpus stage writes the train and test manifests and the trial lists, whatever the source:
# everything downstream (features, train, score) is the same for the synthetic demo and VoxCeleb.
import json

if CORPUS["kind"] == "synthetic":

    rule corpus_synthetic:
        input:
            energy_config=ancient(ENERGY_CONFIG),
        output:
            train=LAYOUT.manifest("train"),
            test=LAYOUT.manifest("test"),
            trials=LAYOUT.trials("synthetic"),
        params:
            synthetic=json.dumps(CORPUS["synthetic"]),
            out=output_folder("train"),
            energy_dir=work_energy_dir(LAYOUT.corpus_job("synthetic")),
        log:
            LAYOUT.log("corpus"),
        conda:
            ENV
        shell:
            measured(
                "svbench corpus synth --out {params.out:q} --synthetic {params.synthetic:q} > {log} 2>&1",
                idle_baseline=False,
            )

else:
    VOX = CORPUS["voxceleb"]

    # The listing decides how many conversion batches there are (none when the tree is already wav),
    # so it is a checkpoint: the DAG is re-evaluated once it exists. A dry run plans it without the trees.
    checkpoint corpus_list_vox2:
        output:
            LAYOUT.vox2_listing(),
        params:
            root=VOX["vox2_dev"],
        log:
            LAYOUT.log("corpus", "list_vox2"),
        conda:
            ENV
        shell:
            "svbench corpus list --root {params.root:q} --out {output} > {log} 2>&1"

    # One job per batch of m4a files; inside it, `threads` ffmpeg processes. A finished wav is kept.
    rule corpus_convert:
        input:
            listing=LAYOUT.vox2_listing(),
            energy_config=ancient(ENERGY_CONFIG),
        output:
            LAYOUT.convert_report("{batch}"),
        wildcard_constraints:
            batch=r"\d{5}",
        params:
            voxceleb=json.dumps(VOX),
            energy_dir=work_energy_dir(LAYOUT.convert_job),
        threads: VOX["convert"]["threads"]
        log:
            LAYOUT.log("corpus", "convert", "batch{batch}"),
        conda:
            ENV
        shell:
            measured(
                "svbench corpus convert --list {input.listing} --voxceleb {params.voxceleb:q}"
                " --batch {wildcards.batch} --workers {threads} --report {output} > {log} 2>&1",
                idle_baseline=False,
            )

    # Trial lists and trees are read from params, not declared inputs: they live outside the workdir
    # and need not exist for a dry run on another machine.
    rule corpus_voxceleb:
        input:
            listing=LAYOUT.vox2_listing(),
            converted=vox2_convert_reports,
            energy_config=ancient(ENERGY_CONFIG),
        output:
            train=LAYOUT.manifest("train"),
            test=LAYOUT.manifest("test"),
            trials=[LAYOUT.trials(name) for name in TRIAL_LISTS],
            bad=LAYOUT.bad_audio(),
        params:
            corpus=json.dumps(CORPUS),
            out=output_folder("train"),
            energy_dir=work_energy_dir(LAYOUT.corpus_job("voxceleb")),
        threads: VOX["check_threads"]
        log:
            LAYOUT.log("corpus", "voxceleb"),
        conda:
            ENV
        shell:
            measured(
                "svbench corpus voxceleb --vox2-list {input.listing} --corpus {params.corpus:q} --workers {threads}"
                " --convert-reports {input.converted} --out {params.out:q} > {log} 2>&1",
                idle_baseline=False,
            )
