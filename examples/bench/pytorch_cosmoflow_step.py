#!/usr/bin/env python3
"""One CosmoFlow-128 training step in PyTorch eager mode, timed: the bar for Halo's step.

The model is the MLPerf HPC CosmoFlow network: five 3x3x3 convolutions (32, 64, 128, 256,
512 filters, 'same' padding), each followed by leaky ReLU (slope 0.3) and 2x2x2 max
pooling, then dense layers 128 -> 64 -> 4 with tanh output, mean squared error, SGD with
momentum. Input volumes are 4 x 128^3. Data are random tensors already on the GPU, so the
number measures the step alone (forward, backward, optimizer), not loading.

    python3 pytorch_cosmoflow_step.py --batch 8 --precision f32 bf16
    python3 pytorch_cosmoflow_step.py --device cpu --threads 2 --batch 4 --precision f32 \
        --steps 2 --repeats 3 --warmup 1

prints one line per precision: samples/s, ms per step and TFLOP/s of the convolutions
(about 69 GFLOP forward per sample, three times that for the step).
"""
import argparse

import torch
import torch.nn as nn

import pytorch_step_timing as timing

CONV_FORWARD_GFLOP_PER_SAMPLE = 69.0  # 5 conv3d layers at 128^3 input; see docstring


def cosmoflow(batchnorm: bool, dropout: float) -> nn.Module:
    layers = []
    cin = 4
    for i in range(5):
        cout = 32 << i
        layers.append(nn.Conv3d(cin, cout, kernel_size=3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm3d(cout))
        layers += [nn.LeakyReLU(0.3), nn.MaxPool3d(2)]
        cin = cout
    layers += [nn.Flatten(),
               nn.Linear(512 * 4 * 4 * 4, 128), nn.LeakyReLU(0.3), nn.Dropout(dropout),
               nn.Linear(128, 64), nn.LeakyReLU(0.3), nn.Dropout(dropout),
               nn.Linear(64, 4), nn.Tanh()]
    return nn.Sequential(*layers)


def run(precision: str, args) -> dict:
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = cosmoflow(args.batchnorm, args.dropout).to(dev)
    fmt = torch.channels_last_3d if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.MSELoss()
    # Several input sets so repeated steps do not run out of one cached buffer.
    xs = [torch.randn(args.batch, 4, 128, 128, 128, device=dev).to(memory_format=fmt) for _ in range(2)]
    ys = [torch.rand(args.batch, 4, device=dev) * 2 - 1 for _ in range(2)]
    use_bf16 = precision == "bf16"

    def step(i):
        x, y = xs[i % 2], ys[i % 2]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        return loss

    t = timing.time_step(step, args)
    return {"precision": precision, "batch": args.batch, "ms_per_step": t * 1e3,
            "samples_per_s": args.batch / t,
            "conv_tflops": 3 * CONV_FORWARD_GFLOP_PER_SAMPLE * args.batch / t / 1e3,
            "peak_mem_gib": timing.peak_memory_gib(args)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.add_arguments(p, batch=8)
    p.add_argument("--batchnorm", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    args = p.parse_args()
    timing.setup(args, f"batchnorm={args.batchnorm}")
    for prec in args.precision:
        timing.set_precision(prec)
        r = run(prec, args)
        print(f"cosmoflow-128 {r['precision']:5s} batch {r['batch']:3d}: {r['samples_per_s']:8.2f} samples/s "
              f"{r['ms_per_step']:8.2f} ms/step  conv {r['conv_tflops']:6.1f} TFLOP/s  "
              f"peak {r['peak_mem_gib']:.1f} GiB", flush=True)
        timing.reset_memory(args)


if __name__ == "__main__":
    main()
