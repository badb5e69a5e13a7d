# The corpus stage writes results/corpus/{train,test}.tsv and trials/{name}.txt, whatever the source:
# everything downstream (features, train, score) is the same for the synthetic demo and VoxCeleb.
import shlex

if CORPUS["kind"] == "synthetic":

    rule corpus_synthetic:
        output:
            train="results/corpus/train.tsv",
            test="results/corpus/test.tsv",
            trials="results/corpus/trials/synthetic.txt",
        params:
            c=CORPUS["synthetic"],
        log:
            "results/logs/corpus.log",
        conda:
            ENV
        shell:
            "svbench corpus synth --out results/corpus --train-speakers {params.c[train_speakers]}"
            " --test-speakers {params.c[test_speakers]} --utts-per-speaker {params.c[utts_per_speaker]}"
            " --sessions-per-speaker {params.c[sessions_per_speaker]} --min-seconds {params.c[min_seconds]}"
            " --max-seconds {params.c[max_seconds]} --trials {params.c[trials]} --seed {params.c[seed]}"
            " > {log} 2>&1"

else:
    VOX = CORPUS["voxceleb"]

    # The listing decides how many conversion batches there are (none when the tree is already wav),
    # so it is a checkpoint: the DAG is re-evaluated once it exists. A dry run plans it without the trees.
    checkpoint corpus_list_vox2:
        output:
            "results/corpus/vox2_files.txt",
        params:
            root=VOX["vox2_dev"],
        log:
            "results/logs/corpus/list_vox2.log",
        conda:
            ENV
        shell:
            "svbench corpus list --root {params.root:q} --out {output} > {log} 2>&1"

    # One job per batch of m4a files; inside it, `threads` ffmpeg processes. A finished wav is kept.
    rule corpus_convert:
        input:
            "results/corpus/vox2_files.txt",
        output:
            "results/corpus/convert/batch{batch}.tsv",
        wildcard_constraints:
            batch=r"\d{5}",
        params:
            root=VOX["vox2_dev"],
            dst=VOX["converted_root"],
            size=VOX["convert"]["batch_size"],
            ffmpeg=VOX["convert"]["ffmpeg"],
        threads: VOX["convert"]["threads"]
        log:
            "results/logs/corpus/convert/batch{batch}.log",
        conda:
            ENV
        shell:
            "svbench corpus convert --list {input} --root {params.root:q} --out {params.dst:q}"
            " --batch {wildcards.batch} --batch-size {params.size} --workers {threads} --ffmpeg {params.ffmpeg:q}"
            " --report {output} > {log} 2>&1"

    # Trial lists and trees are read from params, not declared inputs: they live outside the workdir
    # and need not exist for a dry run on another machine.
    rule corpus_voxceleb:
        input:
            listing="results/corpus/vox2_files.txt",
            converted=vox2_convert_reports,
        output:
            train="results/corpus/train.tsv",
            test="results/corpus/test.tsv",
            trials=expand("results/corpus/trials/{name}.txt", name=TRIAL_LISTS),
            bad="results/corpus/bad_audio.tsv",
        params:
            vox2=VOX["vox2_dev"],
            vox1=VOX["vox1"],
            converted=VOX["converted_root"],
            trials=" ".join(shlex.quote(f"{name}={path}") for name, path in VOX["trials"].items()),
            on_bad=CORPUS["on_bad_audio"],
        threads: VOX["check_threads"]
        log:
            "results/logs/corpus/voxceleb.log",
        conda:
            ENV
        shell:
            "svbench corpus voxceleb --vox2-list {input.listing} --vox2-root {params.vox2:q}"
            " --converted-root {params.converted:q} --vox1-root {params.vox1:q} --trials {params.trials}"
            " --on-bad-audio {params.on_bad} --workers {threads} --convert-reports {input.converted}"
            " --out results/corpus > {log} 2>&1"
