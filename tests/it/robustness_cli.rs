//! Hostile but realistic inputs against the command line (issue "Robustness", first part):
//! each exits non-zero with one line naming the file or flag, never aborts or panics, and
//! never replaces a good output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array1, Array2, Array3};
use ndarray_npy::write_npy;

fn gmmseg_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gmmseg"));
    c.args(args).env_remove("GMMSEG_RESULTS_DIR");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    c.output().expect("binary runs")
}

/// Exit 1 (not 101 = panic, not 134 = abort, not 0), one `error:` line naming `needle`.
fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1: {stderr}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "`{needle}` not in: {stderr}"
    );
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A float32 `.npy` whose header claims (99999999999, 4) over 300 × 4 values.
fn lying_npy(path: &Path) {
    let hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 4), }";
    let pad = (64 - (10 + hdr.len() + 1) % 64) % 64;
    let hdr = format!("{hdr}{}\n", " ".repeat(pad));
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(hdr.len() as u16).to_le_bytes());
    bytes.extend_from_slice(hdr.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 300 * 4 * 4));
    std::fs::write(path, bytes).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let x = Array2::from_shape_fn((300, 4), |(i, k)| ((i * 7 + k * 3) % 11) as f32 / 11.0);
        write_npy(root.join("x.npy"), &x).unwrap();
        write_npy(
            root.join("y.npy"),
            &Array1::from_shape_fn(300, |i| (i % 3) as i64),
        )
        .unwrap();
        write_npy(root.join("big.npy"), &x.mapv(|v| v * 1e31)).unwrap();
        lying_npy(&root.join("lie.npy"));
        Fixture { _dir: dir, root }
    }
    fn p(&self, name: &str) -> String {
        s(&self.root.join(name))
    }
}

#[test]
fn lying_headers_are_refused_before_anything_is_allocated() {
    let f = Fixture::new();
    let (x, y, lie, out) = (f.p("x.npy"), f.p("y.npy"), f.p("lie.npy"), f.p("o.npz"));
    for args in [
        vec!["fit-gmm", "--features", &lie, "--labels", &y, "--out", &out],
        vec!["fit-gmm", "--features", &x, "--labels", &lie, "--out", &out],
        vec![
            "metrics",
            "seg",
            "--pred",
            &y,
            "--gt",
            &lie,
            "--classes",
            "3",
        ],
        vec!["metrics", "anomaly", "--scores", &lie, "--labels", &y],
    ] {
        refused(&gmmseg_in(None, &args), "lie.npy");
    }
}

#[test]
fn size_flags_are_bounded_by_the_data() {
    let f = Fixture::new();
    let (x, y, out) = (f.p("x.npy"), f.p("y.npy"), f.p("o.npz"));
    let fit = |extra: &[&str]| {
        let mut a = vec!["fit-gmm", "--features", &x, "--labels", &y, "--out", &out];
        a.extend_from_slice(extra);
        gmmseg_in(None, &a)
    };
    refused(&fit(&["--iters", "100000000000"]), "--iters");
    refused(
        &fit(&["--components", "1000000000000000000"]),
        "--components",
    );
    // classes of 100 pixels: M = 300 cannot be fitted
    refused(&fit(&["--components", "300"]), "--components");
    refused(&fit(&["--eps", "-0.5"]), "--eps");
    let tr = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--dataset",
            "synthscapes",
            "--steps",
            "1",
            "--out",
            &out,
        ];
        a.extend_from_slice(extra);
        gmmseg_in(None, &a)
    };
    refused(
        &tr(&["--head", "gmmseg", "--components", "100000000"]),
        "--components",
    );
}

#[test]
fn non_finite_intermediate_results_are_errors() {
    let f = Fixture::new();
    let out = gmmseg_in(
        None,
        &[
            "fit-gmm",
            "--features",
            &f.p("big.npy"),
            "--labels",
            &f.p("y.npy"),
            "--out",
            &f.p("o.npz"),
        ],
    );
    refused(&out, "big.npy");
    assert!(!f.root.join("o.npz").exists(), "nothing written");
}

#[test]
fn shapes_are_compared_not_element_counts() {
    let f = Fixture::new();
    write_npy(f.root.join("pred.npy"), &Array3::<i64>::zeros((2, 25, 10))).unwrap();
    write_npy(f.root.join("gt.npy"), &Array3::<i64>::zeros((2, 10, 25))).unwrap();
    let out = gmmseg_in(
        None,
        &[
            "metrics",
            "seg",
            "--pred",
            &f.p("pred.npy"),
            "--gt",
            &f.p("gt.npy"),
            "--classes",
            "3",
        ],
    );
    refused(&out, "gt.npy");
}

#[test]
fn flags_of_another_head_are_refused() {
    let f = Fixture::new();
    // every case must fail on the flag, before a dataset is opened (the folder is missing)
    let refused_flag = |head: &str, flag: &str, value: &str| {
        let out = gmmseg_in(
            None,
            &[
                "train",
                "--dataset",
                "folder:/nonexistent",
                "--head",
                head,
                "--steps",
                "1",
                "--out",
                &f.p("run"),
                flag,
                value,
            ],
        );
        refused(&out, flag);
    };
    // the softmax head has no GMM setting at all
    for (flag, value) in [
        ("--gmm-momentum", "1.5"),
        ("--component-loss", "-5"),
        ("--components", "3"),
    ] {
        refused_flag("softmax", flag, value);
    }
    // the discriminative GMM has M but no EM: its EM flags are refused by name too
    for (flag, value) in [("--gmm-momentum", "0.9"), ("--hard-sinkhorn", "true")] {
        refused_flag("disc-gmm", flag, value);
    }
    // and a GMM head checks every value of its tree, naming the flag
    for (head, flag, value) in [
        ("gmmseg", "--gmm-momentum", "1.5"),
        ("gmmseg", "--components", "0"),
        ("gmmseg-ref", "--var-reg", "0"),
        ("gmmseg", "--component-loss", "-5"),
        ("gmmseg", "--em-loops", "0"),
        ("disc-gmm", "--components", "0"),
    ] {
        refused_flag(head, flag, value);
    }
}

#[test]
fn outputs_are_never_clobbered() {
    let f = Fixture::new();
    let (x, y) = (f.p("x.npy"), f.p("y.npy"));
    let keep = f.root.join("keep.npz");
    std::fs::write(&keep, b"a good earlier output").unwrap();
    // the second output cannot be written: the first must not have replaced the old file
    let out = gmmseg_in(
        None,
        &[
            "fit-gmm",
            "--features",
            &x,
            "--labels",
            &y,
            "--out",
            &s(&keep),
            "--responsibilities",
            &f.p("missing_dir/R.npy"),
        ],
    );
    refused(&out, "R.npy");
    assert_eq!(std::fs::read(&keep).unwrap(), b"a good earlier output");
    // two outputs naming one file
    let out = gmmseg_in(
        None,
        &[
            "fit-gmm",
            "--features",
            &x,
            "--labels",
            &y,
            "--out",
            &s(&keep),
            "--responsibilities",
            &s(&keep),
        ],
    );
    refused(&out, "--responsibilities");
    assert_eq!(std::fs::read(&keep).unwrap(), b"a good earlier output");
    let leftovers: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn folder_dataset(root: &Path, label: u8, classes_txt: bool) {
    for split in ["train", "val"] {
        for sub in ["images", "labels"] {
            std::fs::create_dir_all(root.join(split).join(sub)).unwrap();
        }
        for i in 0..3 {
            image::RgbImage::from_pixel(32, 32, image::Rgb([i * 50, 0, 0]))
                .save(root.join(split).join("images").join(format!("{i}.png")))
                .unwrap();
            image::GrayImage::from_pixel(32, 32, image::Luma([label]))
                .save(root.join(split).join("labels").join(format!("{i}.png")))
                .unwrap();
        }
    }
    if classes_txt {
        std::fs::write(root.join("classes.txt"), "a\nb\n").unwrap();
    }
}

#[test]
fn a_dataset_without_a_labelled_pixel_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    folder_dataset(dir.path(), 255, true);
    let out = gmmseg_in(
        None,
        &[
            "train",
            "--dataset",
            &format!("folder:{}", dir.path().display()),
            "--steps",
            "2",
            "--out",
            &s(&dir.path().join("run")),
        ],
    );
    refused(&out, "no labelled pixel");
}

#[test]
fn ablate_checks_the_dataset_and_writes_under_the_current_directory() {
    let data = tempfile::tempdir().unwrap();
    folder_dataset(data.path(), 1, false);
    let spec = format!("folder:{}", data.path().display());
    let out = gmmseg_in(
        None,
        &[
            "ablate",
            "runtime",
            "--profile",
            "tiny",
            "--dataset",
            &spec,
            "--cache-only",
        ],
    );
    refused(&out, "classes.txt");
    // results go to ./data/results/<profile>/ of the directory the command runs in
    let cwd = tempfile::tempdir().unwrap();
    let out = gmmseg_in(
        Some(cwd.path()),
        &["ablate", "runtime", "--profile", "tiny", "--cache-only"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("data/results/tiny"), "{stdout}");
    assert!(!stdout.contains(env!("CARGO_MANIFEST_DIR")), "{stdout}");
}
