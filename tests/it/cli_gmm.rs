//! `gmmseg fit-gmm` and `gmmseg score` end to end, including every bad-input path.

use std::path::Path;

use super::cli::{gmmseg, p};
use gmmseg::gmm::GmmParams;
use ndarray::{Array1, Array2};
use ndarray_npy::{write_npy, NpzReader};

/// 3 classes in D = 3, two blobs each, as float64 features and int64 labels (some ignored).
fn write_data(dir: &Path) {
    let n = 300;
    let x = Array2::from_shape_fn((n, 3), |(i, k)| {
        let class = (i % 3) as f64;
        let blob = ((i / 3) % 2) as f64;
        class * 4.0 + blob * 1.5 + ((i * 7 + k * 13) % 10) as f64 * 0.05
    });
    let mut y = Array1::from_shape_fn(n, |i| (i % 3) as i64);
    y[10] = 255;
    y[11] = 255;
    write_npy(dir.join("x.npy"), &x).unwrap();
    write_npy(dir.join("y.npy"), &y).unwrap();
}

fn assert_one_line_error(ok: bool, stderr: &str, needle: &str) {
    assert!(!ok, "command should fail");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected `{needle}` in: {stderr}"
    );
}

#[test]
fn fit_then_score() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let (ok, stdout, stderr) = gmmseg(&[
        "fit-gmm",
        "--features",
        &p(dir.path(), "x.npy"),
        "--labels",
        &p(dir.path(), "y.npy"),
        "--components",
        "2",
        "--em",
        "vanilla",
        "--iters",
        "10",
        "--out",
        &p(dir.path(), "params.npz"),
        "--responsibilities",
        &p(dir.path(), "r.npy"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["classes"], 3);
    assert_eq!(summary["ignored"], 2);
    assert_eq!(summary["mean_log_likelihood"].as_array().unwrap().len(), 10);
    // one wall time per iteration, for benchmarks that time an iteration without loading
    let secs = summary["iteration_seconds"].as_array().unwrap();
    assert_eq!(secs.len(), 10);
    assert!(secs.iter().all(|s| s.as_f64().is_some_and(|s| s >= 0.0)));
    let params = GmmParams::load_npz(&dir.path().join("params.npz")).unwrap();
    assert_eq!(params.means.dim(), (3, 2, 3));
    let r: Array2<f32> = ndarray_npy::read_npy(dir.path().join("r.npy")).unwrap();
    assert_eq!(r.dim(), (300, 2));
    assert_eq!(r.row(10).sum(), 0.0);
    assert!((r.row(0).sum() - 1.0).abs() < 1e-5);

    // Sinkhorn EM starting exactly from those parameters.
    let (ok, _, stderr) = gmmseg(&[
        "fit-gmm",
        "--features",
        &p(dir.path(), "x.npy"),
        "--labels",
        &p(dir.path(), "y.npy"),
        "--components",
        "2",
        "--em",
        "sinkhorn",
        "--iters",
        "2",
        "--eps",
        "0.5",
        "--sinkhorn-iters",
        "20",
        "--init",
        &p(dir.path(), "params.npz"),
        "--out",
        &p(dir.path(), "p2.npz"),
    ]);
    assert!(ok, "{stderr}");

    let (ok, stdout, stderr) = gmmseg(&[
        "score",
        "--params",
        &p(dir.path(), "params.npz"),
        "--features",
        &p(dir.path(), "x.npy"),
        "--out",
        &p(dir.path(), "s.npz"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["pixels"], 300);
    let mut npz = NpzReader::new(std::fs::File::open(dir.path().join("s.npz")).unwrap()).unwrap();
    let ll: Array2<f32> = npz.by_name("class_loglik").unwrap();
    let post: Array2<f32> = npz.by_name("posterior").unwrap();
    let anomaly: Array1<f32> = npz.by_name("anomaly").unwrap();
    assert_eq!(ll.dim(), (300, 3));
    assert_eq!(anomaly.len(), 300);
    // Well-separated classes: the posterior picks the true class.
    for i in (0..300).filter(|i| *i != 10 && *i != 11) {
        assert!((post.row(i).sum() - 1.0).abs() < 1e-5);
        assert!(post[[i, i % 3]] > 0.99, "pixel {i}: {}", post.row(i));
    }
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let d = dir.path();
    let fit = |features: &str, labels: &str, extra: &[&str]| {
        let mut args = vec![
            "fit-gmm",
            "--features",
            features,
            "--labels",
            labels,
            "--components",
            "2",
            "--out",
        ];
        let out = p(d, "o.npz");
        args.push(&out);
        args.extend_from_slice(extra);
        gmmseg(&args)
    };
    let x = p(d, "x.npy");
    let y = p(d, "y.npy");

    // NaN feature.
    let mut xn: Array2<f64> = ndarray_npy::read_npy(d.join("x.npy")).unwrap();
    xn[[5, 1]] = f64::NAN;
    write_npy(d.join("nan.npy"), &xn).unwrap();
    let (ok, _, err) = fit(&p(d, "nan.npy"), &y, &[]);
    assert_one_line_error(ok, &err, "nan.npy");
    assert!(err.contains("non-finite"), "{err}");

    // A class with one pixel.
    let mut y1: Array1<i64> = ndarray_npy::read_npy(d.join("y.npy")).unwrap();
    y1[0] = 3;
    write_npy(d.join("y1.npy"), &y1).unwrap();
    let (ok, _, err) = fit(&x, &p(d, "y1.npy"), &[]);
    assert_one_line_error(ok, &err, "class 3 has 1 pixel");

    // Labels out of range for the --init parameters (C = 3).
    let (ok, _, err) = fit(&x, &y, &["--iters", "1"]);
    assert!(ok, "{err}");
    std::fs::rename(d.join("o.npz"), d.join("init.npz")).unwrap();
    let mut y5: Array1<i64> = ndarray_npy::read_npy(d.join("y.npy")).unwrap();
    y5[4] = 7;
    write_npy(d.join("y5.npy"), &y5).unwrap();
    let (ok, _, err) = fit(&x, &p(d, "y5.npy"), &["--init", &p(d, "init.npz")]);
    assert_one_line_error(ok, &err, "label 7");

    // Negative label.
    y5[4] = -1;
    write_npy(d.join("yneg.npy"), &y5).unwrap();
    let (ok, _, err) = fit(&x, &p(d, "yneg.npy"), &[]);
    assert_one_line_error(ok, &err, "label -1");

    // D mismatch between features and parameters.
    write_npy(d.join("x4.npy"), &Array2::<f32>::zeros((300, 4))).unwrap();
    let (ok, _, err) = fit(&p(d, "x4.npy"), &y, &["--init", &p(d, "init.npz")]);
    assert_one_line_error(ok, &err, "D = 3");
    let (ok, _, err) = gmmseg(&[
        "score",
        "--params",
        &p(d, "init.npz"),
        "--features",
        &p(d, "x4.npy"),
        "--out",
        &p(d, "s.npz"),
    ]);
    assert_one_line_error(ok, &err, "x4.npy");

    // Length mismatch.
    write_npy(d.join("short.npy"), &Array1::<i64>::zeros(10)).unwrap();
    let (ok, _, err) = fit(&x, &p(d, "short.npy"), &[]);
    assert_one_line_error(ok, &err, "short.npy");

    // Empty file, truncated file, missing file, garbage .npz.
    std::fs::write(d.join("empty.npy"), b"").unwrap();
    let (ok, _, err) = fit(&p(d, "empty.npy"), &y, &[]);
    assert_one_line_error(ok, &err, "empty.npy");
    let bytes = std::fs::read(d.join("x.npy")).unwrap();
    std::fs::write(d.join("trunc.npy"), &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, err) = fit(&p(d, "trunc.npy"), &y, &[]);
    assert_one_line_error(ok, &err, "trunc.npy");
    let (ok, _, err) = fit(&p(d, "missing.npy"), &y, &[]);
    assert_one_line_error(ok, &err, "missing.npy");
    std::fs::write(d.join("bad.npz"), b"PK garbage").unwrap();
    let (ok, _, err) = gmmseg(&[
        "score",
        "--params",
        &p(d, "bad.npz"),
        "--features",
        &x,
        "--out",
        &p(d, "s.npz"),
    ]);
    assert_one_line_error(ok, &err, "bad.npz");

    // Unsupported dtypes: float labels, complex features.
    let (ok, _, err) = fit(&x, &x, &[]);
    assert_one_line_error(ok, &err, "unsupported dtype");
    let header = "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let hlen = header.len() + pad + 1;
    npy.extend_from_slice(&(hlen as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend(std::iter::repeat_n(b' ', pad));
    npy.push(b'\n');
    npy.extend(std::iter::repeat_n(0u8, 48));
    std::fs::write(d.join("complex.npy"), npy).unwrap();
    let (ok, _, err) = fit(&p(d, "complex.npy"), &y, &[]);
    assert_one_line_error(ok, &err, "complex.npy");

    // Invalid option values name the flag.
    let (ok, _, err) = fit(&x, &y, &["--var-reg", "0"]);
    assert_one_line_error(ok, &err, "--var-reg");
    let (ok, _, err) = fit(&x, &y, &["--eps=-1"]);
    assert_one_line_error(ok, &err, "--eps");
}

/// Issue "Trustworthy ablations", acceptance: `fit-gmm --em sinkhorn` with no E-step flag on
/// network-like features (D = 64, ReLU'd, each class 3 true modes of unequal size, M = 5)
/// gives every component's mass within 2% of N_c/M — here within the 0.1% tolerance.
#[test]
fn fit_gmm_sinkhorn_defaults_reach_equipartition_on_network_like_features() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (d, per_class, classes, shares) = (64, 2_000, 3, [0.6, 0.3, 0.1]);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for c in 0..classes {
        let modes: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..d).map(|_| StandardNormal.sample(&mut rng)).collect())
            .collect();
        for i in 0..per_class {
            let u = i as f64 / per_class as f64;
            let mode = usize::from(u >= shares[0]) + usize::from(u >= shares[0] + shares[1]);
            for &centre in &modes[mode] {
                let z: f32 = StandardNormal.sample(&mut rng);
                x.push((centre + 0.5 * z).max(0.0));
            }
            y.push(c as i64);
        }
    }
    let x = Array2::from_shape_vec((y.len(), d), x).unwrap();
    write_npy(dir.path().join("x.npy"), &x).unwrap();
    write_npy(dir.path().join("y.npy"), &Array1::from(y.clone())).unwrap();
    let (ok, stdout, stderr) = gmmseg(&[
        "fit-gmm",
        "--features",
        &p(dir.path(), "x.npy"),
        "--labels",
        &p(dir.path(), "y.npy"),
        "--em",
        "sinkhorn",
        "--iters",
        "1",
        "--out",
        &p(dir.path(), "params.npz"),
        "--responsibilities",
        &p(dir.path(), "r.npy"),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let reported = json["e_step"]["max_marginal_error"][0].as_f64().unwrap();
    assert!(reported < 1.01e-3, "{json}");
    let r: Array2<f32> = ndarray_npy::read_npy(dir.path().join("r.npy")).unwrap();
    for c in 0..classes as i64 {
        let rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        let target = rows.len() as f64 / 5.0;
        for m in 0..5 {
            let mass: f64 = rows.iter().map(|&i| r[[i, m]] as f64).sum();
            assert!(
                ((mass - target) / target).abs() < 0.02,
                "class {c} component {m}: mass {mass:.1}, N_c/M = {target}"
            );
        }
    }
}
