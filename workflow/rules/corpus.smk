rule corpus_synthetic:
    output:
        train="results/corpus/train.tsv",
        test="results/corpus/test.tsv",
        trials="results/corpus/trials/synthetic.txt",
    params:
        c=config["corpus"]["synthetic"],
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
