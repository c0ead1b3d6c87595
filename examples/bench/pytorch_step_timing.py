"""What the PyTorch twins of Halo's training-step benchmarks share: the command-line options,
the precision settings and the timing loop, so both twins measure a step the same way.

A step is timed as Halo's benchmarks time it: `--warmup` untimed steps (cuDNN's algorithm
search, the caching allocator filling), then `--repeats` runs of `--steps` steps each,
synchronised at the end of a run; the median run's time per step is reported.
"""
import time

import torch


def add_arguments(p, batch: int):
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--precision", nargs="+", default=["f32", "bf16"], choices=["f32", "tf32", "bf16"],
                   help="f32: strict float32 convolutions; tf32: float32 with TF32 tensor cores "
                        "(PyTorch's default for cuDNN convolutions); bf16: autocast to bfloat16")
    p.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--device", default="cuda", help="cuda, or cpu (threads: --threads)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")


def setup(args, what: str):
    """Threads, cuDNN's per-shape algorithm search (as Halo does), and the header line."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    where = (torch.cuda.get_device_name() if args.device == "cuda"
             else f"CPU, {torch.get_num_threads()} threads, oneDNN {torch.backends.mkldnn.is_available()}")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {where}, "
          f"channels_last={args.channels_last}, {what}", flush=True)


def set_precision(precision: str):
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"


def time_step(step, args) -> float:
    """Median seconds per step; `step(i)` returns the loss tensor, checked finite at the end."""
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for i in range(args.warmup):
        step(i)
    sync()
    times = []
    loss = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for i in range(args.steps):
            loss = step(i)
        sync()
        times.append((time.perf_counter() - t0) / args.steps)
    assert loss is None or torch.isfinite(loss).item(), "loss is not finite"
    times.sort()
    return times[len(times) // 2]


def peak_memory_gib(args) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")


def reset_memory(args):
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
