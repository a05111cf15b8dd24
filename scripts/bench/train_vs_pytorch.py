#!/usr/bin/env python3
"""The default network's train step and inference in gmmseg against the same network in
PyTorch on the CPU, timed in one run with the same thread count (issue 18, goal: ours ≤ 1.0×
PyTorch's time).

The network is the quick profile's: DeepLabV3+-lite on the small ResNet backbone (stem 16,
widths [16, 32, 64], one basic block per stage, strides [2, 2, 1], dilations [1, 1, 2]; ASPP
with a 1×1, two dilated 3×3 (rates 2, 4) and an image-pooling branch of 32 channels each,
fused to 64; low-level skip reduced to 16; two 3×3 refinements; Dropout2d(0.1); a 1×1
conv-BN-ReLU projection to D = 64) and the softmax head (1×1 conv with bias to 4 classes),
the layers `src/nn/backbone.rs`, `src/nn/decoder/deeplab.rs` and `src/nn/segnet.rs` build.
Batch 8 of 64×64 images; the loss is the cross-entropy of the logits bilinearly up-sampled to
the labels' 64×64 (align_corners=False); AdamW (lr 2e-3, betas 0.9/0.999, eps 1e-8, weight
decay 0.01 on convolution weights only, as `OptimizerKind::Adamw` applies it). Batch norm
eps 1e-5, momentum 0.1. Inference is the evaluation forward (running statistics, no
dropout, no gradient) to logits at feature resolution, as `SegModel::infer` returns them.

gmmseg's side is `examples/step_timing.rs` (toy images, median of REPS steps after three
warm-up steps); PyTorch's is the same count on random images of the same shape (a dense
network's time does not depend on pixel values). The two alternate ROUNDS times and the best
median of each is kept, so that both see the same background load.

Setup (once): python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
              (PyPI's default wheel; it runs on the CPU without a GPU)
Run:          cargo build --release --example step_timing &&
              /tmp/torchenv/bin/python scripts/bench/train_vs_pytorch.py
"""
import json
import os
import subprocess
import sys
import time

THREADS = os.environ.get("THREADS", "2")
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[var] = THREADS

import torch  # noqa: E402  (after the thread variables)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPS = int(os.environ.get("REPS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
BIN = os.environ.get("GMMSEG_EXAMPLE", "target/release/examples/step_timing")
B, HW, CLASSES = 8, 64, 4


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, dilation=1, relu=True):
        layers = [nn.Conv2d(cin, cout, k, stride, dilation * (k - 1) // 2, dilation, bias=False),
                  nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, dilation):
        super().__init__()
        self.a = ConvBn(cin, cout, 3, stride, dilation)
        self.b = ConvBn(cout, cout, 3, 1, dilation, relu=False)
        self.shortcut = ConvBn(cin, cout, 1, stride, relu=False) if cin != cout or stride != 1 else None

    def forward(self, x):
        s = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.b(self.a(x)) + s)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBn(3, 16, 3, 2)
        self.stage0 = BasicBlock(16, 16, 2, 1)
        self.stage1 = BasicBlock(16, 32, 2, 1)
        self.stage2 = BasicBlock(32, 64, 1, 2)
        self.aspp_1x1 = ConvBn(64, 32, 1)
        self.aspp_dilated = nn.ModuleList([ConvBn(64, 32, 3, 1, r) for r in (2, 4)])
        self.aspp_pool = ConvBn(64, 32, 1)
        self.aspp_fuse = ConvBn(32 * 4, 64, 1)
        self.low_reduce = ConvBn(16, 16, 1)
        self.refine1 = ConvBn(64 + 16, 64, 3)
        self.refine2 = ConvBn(64, 64, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.projection = ConvBn(64, 64, 1)
        self.classifier = nn.Conv2d(64, CLASSES, 1, bias=True)

    def forward(self, x):
        low = self.stage0(self.stem(x))
        high = self.stage2(self.stage1(low))
        h, w = high.shape[-2:]
        pooled = self.aspp_pool(F.adaptive_avg_pool2d(high, 1))
        branches = [self.aspp_1x1(high)] + [b(high) for b in self.aspp_dilated]
        branches.append(F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False))
        aspp = self.aspp_fuse(torch.cat(branches, 1))
        up = F.interpolate(aspp, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.refine2(self.refine1(torch.cat([up, self.low_reduce(low)], 1)))
        return self.classifier(self.projection(self.dropout(y)))


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def torch_times():
    torch.manual_seed(0)
    net = Net()
    decay = [p for n, p in net.named_parameters() if p.ndim == 4]
    no_decay = [p for n, p in net.named_parameters() if p.ndim != 4]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
    images = torch.randn(B, 3, HW, HW)
    labels = torch.randint(0, CLASSES, (B, HW, HW))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = net(images)
        up = F.interpolate(logits, size=(HW, HW), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up, labels, ignore_index=255)
        loss.backward()
        opt.step()
        return loss.item()

    net.train()
    steps = []
    for i in range(REPS + 3):
        t = time.perf_counter()
        step()
        if i >= 3:
            steps.append(time.perf_counter() - t)
    net.eval()
    infer = []
    with torch.inference_mode():
        net(images)
        for _ in range(REPS):
            t = time.perf_counter()
            net(images)
            infer.append(time.perf_counter() - t)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return median(steps), median(infer), params


def ours_times():
    out = subprocess.run([BIN, str(REPS)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["train_step_median_s"], r["inference_median_s"], r["parameters"]


def main():
    torch.set_num_threads(int(THREADS))
    best = {"ours": [float("inf")] * 2, "torch": [float("inf")] * 2}
    for _ in range(ROUNDS):
        for name, f in (("ours", ours_times), ("torch", torch_times)):
            s, i, params = f()
            best[name] = [min(best[name][0], s), min(best[name][1], i)]
            best[name + "_params"] = params
    (os_, oi), (ts, ti) = best["ours"], best["torch"]
    print(f"default network (quick profile), batch {B}, {HW}x{HW}, {THREADS} threads; "
          f"PyTorch {torch.__version__} (oneDNN {torch.backends.mkldnn.is_available()}); "
          f"best of {ROUNDS} alternating rounds of medians over {REPS}")
    print(f"parameters: gmmseg {best['ours_params']}, PyTorch {best['torch_params']}")
    print(f"train step: gmmseg {os_ * 1e3:.1f} ms, PyTorch {ts * 1e3:.1f} ms")
    print(f"inference:  gmmseg {oi * 1e3:.1f} ms, PyTorch {ti * 1e3:.1f} ms")
    print(f"summary: gmmseg over PyTorch, train step {os_ / ts:.2f}x, inference {oi / ti:.2f}x "
          f"(goal <= 1.0x)")


if __name__ == "__main__":
    sys.exit(main())
