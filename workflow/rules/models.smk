# Models: every model entry is checked before any job runs (onstart), and the digits CNN
# that the workflow trains and exports to ONNX for the default config.


onstart:
    check_models_at_start()


rule train_digits_cnn:
    output:
        weights="results/models/digits_cnn.safetensors",
        metadata="results/models/digits_cnn.json",
    log:
        "logs/train_digits_cnn.log",
    benchmark:
        "logs/benchmarks/train_digits_cnn.tsv"
    conda:
        "../../envs/extraction.yaml"
    threads: 1
    params:
        training=DIGITS_CNN_TRAINING,
        version=ACTPIPE_VERSION,
    script:
        "../scripts/train_digits_cnn.py"


rule export_digits_cnn:
    input:
        weights="results/models/digits_cnn.safetensors",
        metadata="results/models/digits_cnn.json",
    output:
        "results/models/digits_cnn.onnx",
    log:
        "logs/export_digits_cnn.log",
    benchmark:
        "logs/benchmarks/export_digits_cnn.tsv"
    localrule: True
    conda:
        "../../envs/extraction.yaml"
    params:
        version=ACTPIPE_VERSION,
    script:
        "../scripts/export_digits_cnn.py"
