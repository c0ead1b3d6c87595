"""gpu_summary.py (examples/bench) on logs in the formats halo-bench-* --device cuda and the
PyTorch twins print: the faster of Halo's eager and graph lines counts, ratios against the
twins' bf16 lines, nan where a log is missing.
    check_gpu_summary.py EXAMPLES_BENCH_DIR"""
import os
import sys
import tempfile

sys.path.insert(0, sys.argv[1])
import gpu_summary  # noqa: E402

logs = {
    "bench-cosmoflow-bf16-b4.log":
        "cosmoflow-128 bf16 batch 4: median step 40.00 ms (min 39.00, max 41.00) = 100.0 samples/s, loss 0.3000\n"
        "cosmoflow-128 bf16 batch 4, one CUDA graph per step (120 nodes, 3.10 GiB kept): median step 20.00 ms "
        "(min 19.00, max 21.00) = 200.0 samples/s\n",
    "pytorch-cosmoflow.log":
        "cosmoflow-128 f32   batch   4:    80.00 samples/s    50.00 ms/step  conv   12.0 TFLOP/s  peak 3.0 GiB\n"
        "cosmoflow-128 bf16  batch   4:   160.00 samples/s    25.00 ms/step  conv   50.0 TFLOP/s  peak 2.0 GiB\n",
    "bench-deepcam-bf16-b2.log":
        "deepcam-768x1152 bf16 batch 2: median step 250.00 ms (min 240.00, max 260.00) = 8.0 samples/s, loss 1.1\n"
        "deepcam-768x1152 bf16 batch 2: the step cannot be captured as a CUDA graph: LAMB\n",
    "pytorch-deepcam.log":
        "deepcam-768x1152 bf16  batch   2:   10.000 samples/s    200.00 ms/step  56000000 parameters  peak 30.0 GiB\n",
}
with tempfile.TemporaryDirectory() as d:
    for name, text in logs.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    line = gpu_summary.summary(d)
print(line)
expected = "cosmoflow_bf16_b4_vs_pytorch=1.250 cosmoflow_bf16_b1_samples_per_s=nan deepcam_bf16_vs_pytorch=0.800"
if line != expected:
    sys.exit(f"FAIL: expected {expected}")
