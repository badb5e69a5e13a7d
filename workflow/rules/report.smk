rule study_summary:
    input:
        energy=expand("results/energy/{step}/{arch}/seed{seed}/energy.csv", step=["train", "embed", "score"],
                      arch=ARCHS, seed=SEEDS),
        metrics=expand("results/scores/{arch}/seed{seed}/metrics.json", arch=ARCHS, seed=SEEDS),
        specs=expand("results/models/{arch}/seed{seed}/spec.json", arch=ARCHS, seed=SEEDS),
    output:
        csv="results/study/summary.csv",
        html=report("results/study/summary.html", category="Study", caption="../report/summary.rst"),
        tex="results/study/summary.tex",
        provenance=report("results/study/provenance.html", category="Carbon", caption="../report/provenance.rst"),
    params:
        config=json.dumps({k: config[k] for k in ("grid", "seeds", "carbon", "energy")}),
    log:
        "results/logs/study/summary.log",
    conda:
        ENV
    shell:
        "svbench study summary --results results --config {params.config:q} --out results/study > {log} 2>&1"


rule study_figures:
    input:
        "results/study/summary.csv",
    output:
        report("results/study/figures/eer_vs_training_energy.png", category="Accuracy",
               caption="../report/eer_vs_training_energy.rst"),
    log:
        "results/logs/study/figures.log",
    conda:
        ENV
    shell:
        "svbench study figures --summary {input} --out results/study/figures > {log} 2>&1"
