#!/usr/bin/env python3
"""Golden values for the calibration, temperature and component metrics (issue 20).

Writes tests/golden/calibration.json: every input (float32 values written as the shortest
decimal that round-trips) with the value its reference implementation gives:

- ECE / RMSCE: NumPy, checked against torchmetrics' multiclass_calibration_error (norm "l1"
  / "l2") to 1e-6 (it sums in float32) where no confidence is exactly 1;
- classwise ECE: netcal's ECE on every class's probability against [y = c], averaged;
- smooth ECE: relplot.smECE on top-label confidence and correctness;
- Brier score and its decomposition by predicted class: NumPy, as the formulas in
  src/metrics/calibration.rs (those of tfp.stats.brier_decomposition);
- NLL: NumPy;
- temperature: scipy.optimize.minimize_scalar (bounded) on the mean NLL of softmax(z / T);
- SegmentMeIfYouCan component metrics: a NumPy/scipy implementation of the benchmark's
  definition (scipy.ndimage.label, 8-connectivity) with the best-F1 threshold of
  sklearn.metrics.precision_recall_curve.

Run (once; the tests read the committed JSON, Python is not needed to run them):
    python3 -m venv /tmp/golden && /tmp/golden/bin/pip install numpy scipy scikit-learn \
        relplot netcal torch torchmetrics
    /tmp/golden/bin/python scripts/golden/make_calibration_golden.py
"""
import json
import pathlib

import numpy as np
import relplot
import scipy.ndimage
import scipy.optimize
import torch
from netcal.metrics import ECE
from sklearn.metrics import precision_recall_curve
from torchmetrics.functional.classification import multiclass_calibration_error

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden" / "calibration.json"
IGNORE = 255


def f32_list(a):
    return [float(str(x)) for x in np.asarray(a, np.float32).ravel()]


def softmax32(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def calibration_reference(probs32, labels, bins):
    valid = labels != IGNORE
    p = probs32[valid].astype(np.float64)
    y = labels[valid].astype(np.int64)
    n, c = p.shape
    conf = p.max(1)
    pred = p.argmax(1)
    correct = (pred == y).astype(np.float64)
    # NumPy top-label bins: min(floor(conf * B), B - 1)
    b = np.minimum((conf * bins).astype(np.int64), bins - 1)
    cnt = np.bincount(b, minlength=bins).astype(np.float64)
    acc = np.bincount(b, weights=correct, minlength=bins)
    cs = np.bincount(b, weights=conf, minlength=bins)
    nz = cnt > 0
    gap = np.abs(acc[nz] - cs[nz]) / cnt[nz]
    ece_np = float(np.sum(cnt[nz] / n * gap))
    rms_np = float(np.sqrt(np.sum(cnt[nz] / n * gap**2)))
    # torchmetrics gives a confidence of exactly 1 a bin of its own (bucketize with B + 1
    # bins); Guo et al., netcal and this crate put it in the last bin: compare elsewhere only.
    if c >= 2 and conf.max() < 1.0:
        tp = torch.tensor(p, dtype=torch.float64)
        ty = torch.tensor(y)
        ece_tm = float(multiclass_calibration_error(tp, ty, num_classes=c, n_bins=bins, norm="l1"))
        rms_tm = float(multiclass_calibration_error(tp, ty, num_classes=c, n_bins=bins, norm="l2"))
        assert abs(ece_tm - ece_np) < 1e-6, (ece_tm, ece_np)  # torchmetrics sums in float32
        assert abs(rms_tm - rms_np) < 1e-6, (rms_tm, rms_np)
    classwise = float(np.mean([ECE(bins).measure(p[:, k], (y == k).astype(np.int64)) for k in range(c)]))
    smooth, width = relplot.smECE(conf, correct, return_width=True)
    onehot = np.eye(c)[y]
    brier = float(np.mean(np.sum((p - onehot) ** 2, 1)))
    nll = float(np.mean(-np.log(np.clip(p[np.arange(n), y], 1e-12, 1.0))))
    ybar = onehot.mean(0)
    unc = float(np.sum(ybar * (1 - ybar)))
    res = rel = 0.0
    for k in range(c):
        m = pred == k
        if not m.any():
            continue
        w = m.mean()
        yk = onehot[m].mean(0)
        pk = p[m].mean(0)
        res += w * np.sum((yk - ybar) ** 2)
        rel += w * np.sum((pk - yk) ** 2)
    return dict(
        ece=ece_np, rmsce=rms_np, classwise_ece=classwise, smooth_ece=float(smooth),
        smooth_ece_bandwidth=float(width), brier=brier, nll=nll, accuracy=float(correct.mean()),
        brier_reliability=float(rel), brier_resolution=float(res), brier_uncertainty=unc,
    )


def calibration_case(name, probs32, labels, bins):
    probs32 = np.asarray(probs32, np.float32)
    labels = np.asarray(labels, np.int64)
    return dict(
        name=name, bins=bins, classes=int(probs32.shape[1]), probs=f32_list(probs32),
        labels=labels.tolist(), expected=calibration_reference(probs32, labels, bins),
    )


def calibration_cases(rng):
    cases = []
    # random: 4000 pixels, 5 classes, logits with class signal, 5% ignored
    n, c = 4000, 5
    y = rng.integers(0, c, n)
    z = rng.normal(0, 1.5, (n, c))
    z[np.arange(n), y] += rng.gamma(2.0, 1.0, n)
    lab = np.where(rng.random(n) < 0.05, IGNORE, y)
    cases.append(calibration_case("random", softmax32(z), lab, 15))
    # overconfident: sharp logits, 60% accuracy
    n, c = 3000, 4
    y = rng.integers(0, c, n)
    z = rng.normal(0, 1, (n, c)) * 6
    lab = np.where(rng.random(n) < 0.4, y, z.argmax(1))
    cases.append(calibration_case("overconfident", softmax32(z), lab, 10))
    # ties: exact ties in the maximum (argmax takes the first) and uniform rows
    rows = [[0.5, 0.5, 0, 0], [0.25] * 4, [0.4, 0.4, 0.2, 0], [0, 0.5, 0.5, 0], [0.3, 0.3, 0.3, 0.1]]
    probs = np.array(rows * 40, np.float32)
    lab = np.array([(i * 7) % 4 for i in range(len(probs))])
    cases.append(calibration_case("ties", probs, lab, 15))
    # one class present in the labels (3 classes)
    z = rng.normal(0, 2, (500, 3))
    cases.append(calibration_case("one_label_class", softmax32(z), np.ones(500, np.int64), 15))
    # a single class: every probability is 1
    cases.append(calibration_case("single_class", np.ones((50, 1), np.float32), np.zeros(50, np.int64), 15))
    # all correct, confidences spread
    z = rng.normal(0, 2, (800, 3))
    p = softmax32(z)
    cases.append(calibration_case("all_correct", p, p.argmax(1), 15))
    # confidences exactly at bin edges (B = 10 decimal edges in float32; B = 4 dyadic)
    conf = np.repeat(np.array([0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], np.float32), 30)
    rest = (1 - conf) / 2
    p = np.stack([conf, rest, rest], 1).astype(np.float32)
    lab = np.array([0 if i % 3 else 1 for i in range(len(p))])
    cases.append(calibration_case("bin_edges_10", p, lab, 10))
    conf = np.repeat(np.array([0.5, 0.75, 1.0], np.float32), 40)
    p = np.stack([conf, 1 - conf], 1).astype(np.float32)
    lab = np.array([0 if i % 4 else 1 for i in range(len(p))])
    cases.append(calibration_case("bin_edges_4", p, lab, 4))
    return cases


def temperature_cases(rng):
    out = []
    for name, scale, acc in [("overconfident", 5.0, 0.6), ("underconfident", 0.3, 0.9), ("random", 1.0, None)]:
        n, c = 2000, 5
        y = rng.integers(0, c, n)
        z = rng.normal(0, 1, (n, c)) * scale
        if acc is not None:
            hit = rng.random(n) < acc
            z[np.arange(n), np.where(hit, y, (y + 1) % c)] += 2 * scale
        else:
            z[np.arange(n), y] += 1.0
        lab = np.where(rng.random(n) < 0.05, IGNORE, y)
        z32 = z.astype(np.float32)
        zz = z32[lab != IGNORE].astype(np.float64)
        yy = lab[lab != IGNORE]

        def nll(t):
            s = zz / t
            m = s.max(1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(s - m).sum(1))
            return float(np.mean(lse - s[np.arange(len(yy)), yy]))

        r = scipy.optimize.minimize_scalar(nll, bounds=(0.01, 100.0), method="bounded",
                                           options=dict(xatol=1e-12, maxiter=10000))
        out.append(dict(name=name, classes=c, logits=f32_list(z32), labels=lab.tolist(),
                        t=float(r.x), nll_after=float(r.fun), nll_before=nll(1.0)))
    return out


def smiyc_image(score, label, thresh, min_seg, min_inst):
    """The benchmark's per-image counts, written from its definition."""
    st = np.ones((3, 3), np.uint8)
    pred_mask = (score >= thresh) & (label != IGNORE)  # the best-F1 point's own prediction
    gt, n_gt = scipy.ndimage.label(label == 1, st)
    pred, n_pred = scipy.ndimage.label(pred_mask, st)
    for k in range(1, n_pred + 1):
        if np.sum(pred == k) < min_seg:
            pred[pred == k] = 0
    label = label.copy()
    for k in range(1, n_gt + 1):
        if np.sum(gt == k) < min_inst:
            label[gt == k] = IGNORE
    roi = label != IGNORE
    gt, pred = gt[roi], pred[roi]
    siou, prec = [], []
    for k in np.unique(gt[gt > 0]):
        touch = np.unique(pred[(gt == k) & (pred > 0)])
        inter = np.sum((gt == k) & np.isin(pred, touch))
        adj = np.sum(~np.isin(gt, [0, k]) & np.isin(pred, touch))
        union = np.sum(np.isin(pred, touch)) + np.sum(gt == k) - inter - adj
        siou.append(inter / union)
    for k in np.unique(pred[pred > 0]):
        prec.append(np.sum((pred == k) & (gt > 0)) / np.sum(pred == k))
    return np.array(siou), np.array(prec)


def component_case(rng, name, n_img, h, w, min_seg, min_inst):
    scores = np.zeros((n_img, h, w), np.float32)
    labels = np.zeros((n_img, h, w), np.int64)
    for i in range(n_img):
        noise = scipy.ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 1.5)
        lab = np.zeros((h, w), np.int64)
        sig = np.zeros((h, w))
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, h - 6), rng.integers(0, w - 6)
            hh, ww = rng.integers(2, 8), rng.integers(2, 10)
            lab[y0:y0 + hh, x0:x0 + ww] = 1
            dy, dx = rng.integers(-2, 3), rng.integers(-2, 3)
            sig[max(0, y0 + dy):y0 + dy + hh, max(0, x0 + dx):x0 + dx + ww] += rng.uniform(0.5, 2.0)
        lab[: h // 8, :] = IGNORE  # a void band
        scores[i] = (noise * 0.5 + sig).astype(np.float32)
        labels[i] = lab
    valid = labels != IGNORE
    prc, rec, thr = precision_recall_curve((labels[valid] == 1).astype(int), scores[valid].astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * prc * rec / (prc + rec)
    thresh = float(thr[np.nanargmax(f1)])
    sious, precs = [], []
    taus = np.linspace(0.25, 0.75, 11)
    tp = np.zeros(11); fn = np.zeros(11); fp = np.zeros(11)
    for i in range(n_img):
        s, p = smiyc_image(scores[i], labels[i], np.float32(thresh), min_seg, min_inst)
        sious += list(s)
        precs += list(p)
        for j, t in enumerate(taus):
            tp[j] += np.count_nonzero(s >= t)
            fn[j] += np.count_nonzero(s < t)
            fp[j] += np.count_nonzero(p < t)
    f1s = 2 * tp / (2 * tp + fn + fp)
    return dict(
        name=name, shape=[n_img, h, w], scores=f32_list(scores), labels=labels.ravel().tolist(),
        min_segment_size=min_seg, min_instance_size=min_inst,
        expected=dict(threshold=thresh, best_f1=float(np.nanmax(f1)), siou=float(np.mean(sious)),
                      ppv=float(np.mean(precs)), mean_f1=float(np.mean(f1s)),
                      gt_components=len(sious), predicted_components=len(precs)),
    )


def main():
    rng = np.random.default_rng(20)
    golden = dict(
        calibration=calibration_cases(rng),
        temperature=temperature_cases(rng),
        components=[
            component_case(rng, "blobs", 6, 40, 60, 1, 1),
            component_case(rng, "blobs_size_thresholds", 6, 40, 60, 6, 5),
        ],
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(golden, separators=(",", ":")))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
