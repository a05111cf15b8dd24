//! SynthScapes: determinism, valid labels, anomaly masks, class frequencies and — the point
//! of the generator — class densities that a single Gaussian fits clearly worse than a
//! mixture.

use gmmseg::data::synthscapes::{classes, FREQUENCY_RANGES};
use gmmseg::data::{Dataset, SynthScapes, SynthScapesConfig, SynthSplit, IGNORE_LABEL};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn ds(split: SynthSplit, seed: u64) -> SynthScapes {
    let cfg = SynthScapesConfig {
        seed,
        ..Default::default()
    };
    SynthScapes::new(cfg.check().unwrap(), split)
}

fn bytes(s: &gmmseg::data::Sample) -> Vec<u8> {
    let mut v: Vec<u8> = s.image.iter().flat_map(|x| x.to_le_bytes()).collect();
    v.extend(s.label.iter());
    if let Some(a) = &s.anomaly {
        v.extend(a.iter());
    }
    v
}

#[test]
fn same_seed_gives_identical_bytes_and_other_seeds_differ() {
    for split in SynthSplit::ALL {
        let (a, b, c) = (ds(split, 7), ds(split, 7), ds(split, 8));
        for i in [0, 1, 57] {
            assert_eq!(
                bytes(&a.get(i).unwrap()),
                bytes(&b.get(i).unwrap()),
                "{split:?} {i}"
            );
            assert_ne!(
                bytes(&a.get(i).unwrap()),
                bytes(&c.get(i).unwrap()),
                "{split:?} {i}"
            );
        }
        assert_ne!(bytes(&a.get(0).unwrap()), bytes(&a.get(1).unwrap()));
    }
    // Train and val are different scenes.
    assert_ne!(
        bytes(&ds(SynthSplit::Train, 0).get(0).unwrap()),
        bytes(&ds(SynthSplit::Val, 0).get(0).unwrap())
    );
}

#[test]
fn labels_are_valid_and_images_in_unit_range() {
    for split in SynthSplit::ALL {
        let d = ds(split, 0);
        for i in 0..40 {
            let s = d.get(i).unwrap();
            assert!(s.image.iter().all(|v| (0.0..=1.0).contains(v)));
            for &l in s.label.iter() {
                assert!(
                    (l as usize) < d.num_classes() || l == IGNORE_LABEL,
                    "label {l}"
                );
            }
            if split.has_anomaly() {
                // Only anomaly pixels are unlabelled.
                assert!(s.label.iter().all(|&l| l != IGNORE_LABEL) || s.anomaly.is_some());
            } else {
                assert!(s.label.iter().all(|&l| l != IGNORE_LABEL));
            }
        }
    }
}

#[test]
fn anomaly_masks_match_the_pasted_objects() {
    for split in [SynthSplit::Anomaly, SynthSplit::AnomalyContext] {
        let d = ds(split, 0);
        let (mut sat_sum, mut sat_n) = ([0.0f64; 2], [0.0f64; 2]);
        for i in 0..60 {
            let s = d.get(i).unwrap();
            let a = s.anomaly.as_ref().expect("anomaly splits carry masks");
            let mut n_anom = 0;
            for (&m, &l) in a.iter().zip(s.label.iter()) {
                assert!(m == 0 || m == 1 || m == IGNORE_LABEL, "mask value {m}");
                // Mask 1 exactly where the label is unknown (the object).
                assert_eq!(m == 1, l == IGNORE_LABEL, "sample {i}");
                n_anom += (m == 1) as usize;
                match split {
                    // Lost&Found: only the drivable area (and the objects) is scored.
                    SynthSplit::Anomaly => {
                        if m == 0 {
                            assert!(l == classes::ROAD || l == classes::SIDEWALK);
                        }
                        if m == IGNORE_LABEL {
                            assert!(l != classes::ROAD && l != classes::SIDEWALK);
                        }
                    }
                    _ => assert_ne!(m, IGNORE_LABEL),
                }
            }
            assert!(
                n_anom >= 3,
                "{split:?} sample {i} has {n_anom} anomaly pixels"
            );
            let sat = |y: usize, x: usize| {
                let c = [s.image[(0, y, x)], s.image[(1, y, x)], s.image[(2, y, x)]];
                c.iter().cloned().fold(0.0f32, f32::max) - c.iter().cloned().fold(1.0f32, f32::min)
            };
            for ((y, x), &m) in a.indexed_iter() {
                if m == 1 {
                    sat_sum[0] += sat(y, x) as f64;
                    sat_n[0] += 1.0;
                } else {
                    sat_sum[1] += sat(y, x) as f64;
                    sat_n[1] += 1.0;
                }
            }
        }
        // Anomalies use saturated novel colours: on average far more saturated than the
        // in-distribution pixels.
        let (sa, si) = (sat_sum[0] / sat_n[0], sat_sum[1] / sat_n[1]);
        assert!(
            sa > si + 0.15,
            "{split:?}: saturation of anomalies {sa:.3} vs rest {si:.3}"
        );
    }
    // Lost&Found objects lie on the road: the pixel just below each object's bottom row is
    // mostly road (or another object).
    let d = ds(SynthSplit::Anomaly, 0);
    let (mut below_road, mut total) = (0, 0);
    for i in 0..60 {
        let s = d.get(i).unwrap();
        let a = s.anomaly.unwrap();
        let (h, w) = a.dim();
        for x in 0..w {
            if let Some(y) = (0..h - 1).rev().find(|&y| a[(y, x)] == 1) {
                total += 1;
                let l = s.label[(y + 1, x)];
                below_road +=
                    (l == classes::ROAD || l == IGNORE_LABEL || l == classes::CAR) as usize;
            }
        }
    }
    assert!(
        below_road as f64 > 0.8 * total as f64,
        "{below_road}/{total}"
    );
}

#[test]
fn class_frequencies_are_within_documented_ranges() {
    let d = ds(SynthSplit::Train, 0);
    let st = gmmseg::data::stats::class_stats(&d, Some(400)).unwrap();
    let f = st.frequencies();
    for (k, (&fk, &(lo, hi))) in f.iter().zip(FREQUENCY_RANGES.iter()).enumerate() {
        assert!(
            fk >= lo && fk <= hi,
            "class {k}: frequency {fk:.4} outside [{lo}, {hi}]"
        );
    }
    // Every class occurs in a good share of the images (the task is learnable).
    for (k, &n) in st.images_with_class.iter().enumerate() {
        assert!(n as f64 > 0.5 * 400.0, "class {k} in only {n} images");
    }
}

#[test]
fn other_sizes_scale_the_scene() {
    for size in [96, 128] {
        let cfg = SynthScapesConfig::with_size(size).check().unwrap();
        let d = SynthScapes::new(cfg, SynthSplit::Train);
        let st = gmmseg::data::stats::class_stats(&d, Some(60)).unwrap();
        for (k, (&fk, &(lo, hi))) in st
            .frequencies()
            .iter()
            .zip(FREQUENCY_RANGES.iter())
            .enumerate()
        {
            assert!(
                fk >= lo * 0.5 && fk <= hi * 1.5,
                "size {size} class {k}: {fk:.4}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A tiny, self-contained diagonal-GMM fit (k-means++ initialisation, then EM), so this test
// does not depend on the crate's GMM module.

type P = [f64; 3];

fn log_gauss(x: &P, mu: &P, var: &P) -> f64 {
    let mut s = 0.0;
    for d in 0..3 {
        s += -0.5
            * ((x[d] - mu[d]).powi(2) / var[d] + var[d].ln() + (2.0 * std::f64::consts::PI).ln());
    }
    s
}

struct Gmm {
    w: Vec<f64>,
    mu: Vec<P>,
    var: Vec<P>,
}

impl Gmm {
    fn loglik(&self, x: &P) -> f64 {
        let l: Vec<f64> = (0..self.w.len())
            .map(|k| self.w[k].ln() + log_gauss(x, &self.mu[k], &self.var[k]))
            .collect();
        let m = l.iter().cloned().fold(f64::MIN, f64::max);
        m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    }
    fn mean_loglik(&self, xs: &[P]) -> f64 {
        xs.iter().map(|x| self.loglik(x)).sum::<f64>() / xs.len() as f64
    }
}

const VAR_FLOOR: f64 = 1e-4;

fn fit(xs: &[P], k: usize, rng: &mut ChaCha8Rng) -> Gmm {
    let n = xs.len();
    // k-means++ seeding.
    let mut mu: Vec<P> = vec![xs[rng.gen_range(0..n)]];
    while mu.len() < k {
        let d2: Vec<f64> = xs
            .iter()
            .map(|x| {
                mu.iter()
                    .map(|m| (0..3).map(|d| (x[d] - m[d]).powi(2)).sum::<f64>())
                    .fold(f64::MAX, f64::min)
            })
            .collect();
        let total: f64 = d2.iter().sum();
        let mut r = rng.gen_range(0.0..total.max(1e-12));
        let mut pick = n - 1;
        for (i, v) in d2.iter().enumerate() {
            if r < *v {
                pick = i;
                break;
            }
            r -= v;
        }
        mu.push(xs[pick]);
    }
    let mut g = Gmm {
        w: vec![1.0 / k as f64; k],
        mu,
        var: vec![[0.01; 3]; k],
    };
    for _ in 0..60 {
        let mut nk = vec![1e-9; k];
        let mut s1 = vec![[0.0; 3]; k];
        let mut s2 = vec![[0.0; 3]; k];
        for x in xs {
            let l: Vec<f64> = (0..k)
                .map(|j| g.w[j].ln() + log_gauss(x, &g.mu[j], &g.var[j]))
                .collect();
            let m = l.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = l.iter().map(|v| (v - m).exp()).sum();
            for j in 0..k {
                let r = (l[j] - m).exp() / z;
                nk[j] += r;
                for d in 0..3 {
                    s1[j][d] += r * x[d];
                    s2[j][d] += r * x[d] * x[d];
                }
            }
        }
        for j in 0..k {
            g.w[j] = nk[j] / n as f64;
            for d in 0..3 {
                g.mu[j][d] = s1[j][d] / nk[j];
                g.var[j][d] = (s2[j][d] / nk[j] - g.mu[j][d].powi(2)).max(VAR_FLOOR);
            }
        }
    }
    g
}

#[test]
fn class_densities_are_multimodal() {
    let d = ds(SynthSplit::Train, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut pixels: Vec<Vec<P>> = vec![Vec::new(); 8];
    for i in 0..300 {
        let s = d.get(i).unwrap();
        for ((y, x), &l) in s.label.indexed_iter() {
            // Subsample big classes so every class gets a few thousand pixels.
            if l < 8 && rng.gen_bool(0.08) {
                pixels[l as usize].push([
                    s.image[(0, y, x)] as f64,
                    s.image[(1, y, x)] as f64,
                    s.image[(2, y, x)] as f64,
                ]);
            }
        }
    }
    let mut report = Vec::new();
    for (c, px) in pixels.iter_mut().enumerate() {
        px.truncate(6000);
        assert!(px.len() > 500, "class {c}: only {} pixels", px.len());
        let half = px.len() / 2;
        let (train, test) = px.split_at(half);
        let one = fit(train, 1, &mut rng);
        let five = fit(train, 5, &mut rng);
        let (l1, l5) = (one.mean_loglik(test), five.mean_loglik(test));
        report.push(format!(
            "{c}: M=1 {l1:.3}, M=5 {l5:.3}, gain {:.3}",
            l5 - l1
        ));
        assert!(
            l5 - l1 > 0.5,
            "class {c}: a 5-component mixture gains only {:.3} nats/pixel over one Gaussian ({l1:.3} vs {l5:.3})",
            l5 - l1
        );
    }
    eprintln!("held-out log-likelihood per pixel:\n{}", report.join("\n"));
}
