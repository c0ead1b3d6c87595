#!/usr/bin/env python3
"""One DeepCAM training step in PyTorch eager mode, timed: the bar for Halo's DeepCAM step
(halo-bench-deepcam, and halo-bench-deepcam --device cuda on a GPU).

The model is Halo's DeepLabv3+ (src/models/deeplabv3.cpp) layer for layer, with the same
options: the Xception encoder (entry flow, `--middle` middle blocks, exit flow with dilation
2), ASPP (1x1 and 3x3 at rates 6, 12, 18, and the global-pooling branch), the decoder with
three transposed convolutions and the 48-channel low-level path; every convolution without
bias except the pooling branch's and decoder.conv3; BatchNorm eps 1e-5, momentum 0.1.
`--channel-scale` multiplies every channel count as Halo's option does (each at least 4).
The step: weighted cross-entropy over 3 classes at full resolution (logits in f32), backward,
LAMB (Halo's rule: Adam moments with bias correction, then the layer's trust ratio
||w|| / ||u||, weight decay in u). Data are random tensors already on the device, so the
number measures the step alone.

    python3 pytorch_deepcam_step.py --batch 2 --precision f32 bf16                 # 768x1152 on a GPU
    python3 pytorch_deepcam_step.py --device cpu --threads 2 --batch 1 --height 96 --width 144 \\
        --channel-scale 0.25 --middle 2 --steps 2 --repeats 1 --warmup 1        # small, on the CPU

prints one line per precision: samples/s and ms per step.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import pytorch_step_timing as timing


class Scale:
    def __init__(self, s: float):
        self.s = s

    def __call__(self, c: int) -> int:
        return max(4, int(round(c * self.s)))


def conv(cin, cout, k, stride=1, dilation=1, groups=1, bias=False):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation,
                     groups=groups, bias=bias)


def deconv(cin, cout):  # exactly doubles H and W
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False)


def bn_relu(c):
    return nn.Sequential(nn.BatchNorm2d(c, eps=1e-5, momentum=0.1), nn.ReLU())


def separable(cin, cout, stride=1, dilation=1):
    return nn.Sequential(conv(cin, cin, 3, stride, dilation, groups=cin), conv(cin, cout, 1))


class Block(nn.Module):
    """Halo's Builder::block: separable convolutions (BN + ReLU between them, BN after the last),
    a strided or 'last' separable convolution, a 1x1 + BN skip where the shape changes, the sum,
    and an optional ReLU."""

    def __init__(self, cin, planes, reps, stride, dilation, end_with_relu, grow_first, is_last):
        super().__init__()
        steps = []
        filters = cin
        if grow_first:
            steps.append((cin, planes))
            filters = planes
        steps += [(filters, filters)] * (reps - 1)
        if not grow_first:
            steps.append((cin, planes))
        layers = []
        for i, (a, b) in enumerate(steps):
            layers.append(separable(a, b, 1, dilation))
            layers.append(bn_relu(b) if i + 1 < len(steps) else nn.BatchNorm2d(b))
        if stride != 1:
            layers.append(separable(planes, planes, stride))
        elif is_last:
            layers.append(separable(planes, planes))
        self.main = nn.Sequential(*layers)
        self.skip = (nn.Sequential(conv(cin, planes, 1, stride), nn.BatchNorm2d(planes))
                     if planes != cin or stride != 1 else nn.Identity())
        self.end_with_relu = end_with_relu

    def forward(self, x):
        y = self.main(x) + self.skip(x)
        return F.relu(y) if self.end_with_relu else y


class DeepLabV3Plus(nn.Module):
    def __init__(self, in_channels=16, classes=3, height=768, width=1152, middle=16, channel_scale=1.0,
                 rates=(6, 12, 18), exit_dilation=2):
        super().__init__()
        ch = Scale(channel_scale)
        c32, c64, c128, c256, c728 = ch(32), ch(64), ch(128), ch(256), ch(728)
        c1024, c1536, c2048, c48, aspp, dec = ch(1024), ch(1536), ch(2048), ch(48), ch(256), ch(256)
        self.entry = nn.Sequential(conv(in_channels, c32, 3, 2), bn_relu(c32), conv(c32, c64, 3), bn_relu(c64))
        self.block1 = Block(c64, c128, 2, 2, 1, False, True, False)
        self.block23 = nn.Sequential(Block(c128, c256, 2, 2, 1, True, True, False),
                                     Block(c256, c728, 2, 2, 1, True, True, True))
        self.middle = nn.Sequential(*[Block(c728, c728, 3, 1, 1, True, True, False) for _ in range(middle)])
        self.exit = nn.Sequential(
            Block(c728, c1024, 2, 1, 1, False, False, True),
            separable(c1024, c1536, 1, exit_dilation), bn_relu(c1536),
            separable(c1536, c1536, 1, exit_dilation), bn_relu(c1536),
            separable(c1536, c2048, 1, exit_dilation), bn_relu(c2048))
        self.aspp = nn.ModuleList([nn.Sequential(conv(c2048, aspp, 1), bn_relu(aspp))] +
                                  [nn.Sequential(conv(c2048, aspp, 3, dilation=r), bn_relu(aspp)) for r in rates])
        self.aspp_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(c2048, aspp, 1, bias=True), nn.ReLU())
        self.aspp_project = nn.Sequential(conv(aspp * (len(rates) + 2), aspp, 1), bn_relu(aspp))
        self.low = nn.Sequential(conv(c128, c48, 1), bn_relu(c48))
        self.up12 = nn.Sequential(deconv(aspp, dec), bn_relu(dec), deconv(dec, dec), bn_relu(dec))
        self.head = nn.Sequential(conv(dec + c48, dec, 3), bn_relu(dec), conv(dec, dec, 3), bn_relu(dec),
                                  conv(dec, dec, 1, bias=True), deconv(dec, dec), bn_relu(dec), deconv(dec, classes))

    def forward(self, x):
        low = F.relu(self.block1(self.entry(x)))  # the rectified low-level copy, as in Halo's model
        f = self.exit(self.middle(self.block23(low)))
        pooled = self.aspp_pool(f).expand(-1, -1, f.shape[2], f.shape[3])
        y = self.aspp_project(torch.cat([b(f) for b in self.aspp] + [pooled], 1))
        y = torch.cat([self.up12(y), self.low(low)], 1)
        return self.head(y)


class Lamb(torch.optim.Optimizer):
    """Halo's LAMB rule (halo/optim/update_rules.hpp), in multi-tensor (foreach) operations."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            b1, b2 = g["betas"]
            for p in ps:
                if not self.state[p]:
                    self.state[p] = {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
            ms = [self.state[p]["m"] for p in ps]
            vs = [self.state[p]["v"] for p in ps]
            t = self.state[ps[0]]["t"] + 1
            for p in ps:
                self.state[p]["t"] = t
            grads = [p.grad for p in ps]
            torch._foreach_mul_(ms, b1)
            torch._foreach_add_(ms, grads, alpha=1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(torch._foreach_div(vs, 1 - b2 ** t))
            torch._foreach_add_(denom, g["eps"])
            u = torch._foreach_div(torch._foreach_div(ms, 1 - b1 ** t), denom)
            torch._foreach_add_(u, ps, alpha=g["weight_decay"])
            wn, un = torch._foreach_norm(ps), torch._foreach_norm(u)
            for p, ui, a, b in zip(ps, u, wn, un):
                trust = torch.where((a > 0) & (b > 0), a / b, torch.ones_like(a))
                p.add_(ui * trust, alpha=-g["lr"])


def run(precision: str, args) -> dict:
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = DeepLabV3Plus(height=args.height, width=args.width, middle=args.middle,
                          channel_scale=args.channel_scale).to(dev)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = Lamb(model.parameters(), lr=1e-3)
    weights = torch.tensor([1.0, 20.0, 3.0], device=dev)  # as halo-bench-deepcam
    xs = [torch.randn(args.batch, 16, args.height, args.width, device=dev).to(memory_format=fmt) for _ in range(2)]
    ys = [torch.randint(0, 3, (args.batch, args.height, args.width), device=dev) for _ in range(2)]
    use_bf16 = precision == "bf16"

    def step(i):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = model(xs[i % 2])
        loss = F.cross_entropy(out.float(), ys[i % 2], weight=weights)
        loss.backward()
        opt.step()
        return loss

    t = timing.time_step(step, args)
    return {"precision": precision, "batch": args.batch, "ms_per_step": t * 1e3,
            "samples_per_s": args.batch / t, "peak_mem_gib": timing.peak_memory_gib(args),
            "parameters": sum(p.numel() for p in model.parameters())}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.add_arguments(p, batch=2)
    p.add_argument("--height", type=int, default=768)
    p.add_argument("--width", type=int, default=1152)
    p.add_argument("--middle", type=int, default=16, help="middle-flow blocks")
    p.add_argument("--channel-scale", type=float, default=1.0)
    args = p.parse_args()
    if args.height % 16 or args.width % 16:
        p.error("--height and --width must be multiples of 16 (the encoder's output stride)")
    timing.setup(args, f"DeepLabv3+ {args.height}x{args.width}, {args.middle} middle blocks, "
                       f"channel scale {args.channel_scale}")
    for prec in args.precision:
        timing.set_precision(prec)
        r = run(prec, args)
        print(f"deepcam-{args.height}x{args.width} {r['precision']:5s} batch {r['batch']:3d}: "
              f"{r['samples_per_s']:8.3f} samples/s {r['ms_per_step']:9.2f} ms/step  "
              f"{r['parameters']} parameters  peak {r['peak_mem_gib']:.1f} GiB", flush=True)
        timing.reset_memory(args)


if __name__ == "__main__":
    main()
