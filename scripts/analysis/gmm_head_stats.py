#!/usr/bin/env python3
"""How much of a trained GMM head's variance is the regulariser, and how distinct its
components are (issue 19, item 2: "the variance floor … measure it").

Reads `checkpoint.safetensors` of a `gmmseg train --head gmmseg` run (NumPy only; the
safetensors layout is an 8-byte header length, a JSON header and raw little-endian data) and
prints, over every (class, component, channel):
- the fitted variance σ² (which includes `var_reg`, added in the M-step) and the share of it
  that is `var_reg`;
- the empirical part σ² − var_reg against 0.34, the variance of a standard normal through a
  ReLU, what batch-normalised features after the projection's ReLU have;
- per class, the mean Mahalanobis distance between its components' means (under their
  average variance): near 0 means the M components are one Gaussian.

Run: gmmseg train --dataset synthscapes --head gmmseg --steps 150 --out /tmp/run_gmm
     python3 scripts/analysis/gmm_head_stats.py /tmp/run_gmm [VAR_REG, default 1.0]
"""
import json
import struct
import sys

import numpy as np


def tensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n

    def get(key):
        t = header[key]
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: {key} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        return np.frombuffer(data[base + a:base + b], dtype="<f4").reshape(t["shape"])
    return get


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    run = sys.argv[1]
    var_reg = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    get = tensors(f"{run}/checkpoint.safetensors")
    var, mu = get("fitted.gmm.variances"), get("fitted.gmm.means")
    c, m, d = var.shape
    emp = var - var_reg
    print(f"{run}: C={c} M={m} D={d}, var_reg {var_reg}")
    print(f"fitted variance: median {np.median(var):.3f} (10%: {np.quantile(var, .1):.3f}, "
          f"90%: {np.quantile(var, .9):.3f})")
    print(f"share of the variance that is var_reg: median {np.median(var_reg / var):.2f}")
    print(f"empirical part below 0.34 (ReLU of a standard normal): {(emp < 0.34).mean():.2f}; "
          f"below 0.1: {(emp < 0.1).mean():.2f}")
    seps = []
    for k in range(c):
        diff = mu[k][:, None, :] - mu[k][None, :, :]
        avg_var = 0.5 * (var[k][:, None, :] + var[k][None, :, :])
        sep = np.sqrt((diff ** 2 / avg_var).sum(-1))[np.triu_indices(m, 1)]
        seps.append(sep.mean())
    print("mean Mahalanobis distance between a class's components, per class: "
          + " ".join(f"{s:.2f}" for s in seps))


if __name__ == "__main__":
    main()
