//! A generated corpus of bad inputs against the release contract of the CLI: every case
//! must exit non-zero with exactly one `error:` line on stderr, never panic or abort, and
//! leave an existing output file untouched. The generator is this module: each input slot
//! of `fit-gmm`, `score` and `metrics` (a NumPy file of a given kind) is paired with every
//! defect that applies to its kind (missing, empty, not NumPy, truncated, a header that
//! lies about its size, an unsupported dtype, the wrong number of axes, zero rows, NaN,
//! labels out of range, …), and numeric flags with values out of their range.

use std::path::PathBuf;
use std::process::Command;

use gmmseg::io::npy::write_npy;
use ndarray::{Array1, Array2, Array3};

/// What a slot holds, which decides the defects that apply to it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// float (N, D) features or (N, C) probabilities
    FloatMatrix,
    /// integer (N,) labels in 0..C or 255
    IntLabels,
    /// float scores of any shape
    FloatAny,
    /// integer maps of any shape (predictions, anomaly labels, image ids)
    IntAny,
}

/// The bytes of a `.npy` file with this header (whatever the data).
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Every defect that applies to `kind`, as (name, file bytes or `None` for a missing file).
fn defects(kind: Kind) -> Vec<(&'static str, Option<Vec<u8>>)> {
    let f32s = |n: usize, v: f32| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
    let i64s = |n: usize, v: i64| -> Vec<u8> { (0..n).flat_map(|_| v.to_le_bytes()).collect() };
    let mut d: Vec<(&'static str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("empty", Some(Vec::new())),
        ("text", Some(b"1,2,3\n4,5,6\n".to_vec())),
        ("bad magic", Some(b"\x93NUMPX\x01\x00\x10\x00{}".to_vec())),
        (
            "header cut",
            Some(npy("<f4", "(60, 4)", &[])[..20].to_vec()),
        ),
        (
            "lying header",
            Some(npy("<f4", "(99999999999, 4)", &f32s(16, 1.0))),
        ),
        (
            "lying header 3-d",
            Some(npy("<i8", "(4000000, 4000000, 10)", &i64s(4, 0))),
        ),
        (
            "complex dtype",
            Some(npy("<c8", "(60, 4)", &f32s(480, 0.0))),
        ),
        ("string dtype", Some(npy("<U3", "(60,)", &vec![0u8; 720]))),
        ("object dtype", Some(npy("|O", "(60,)", &vec![0u8; 480]))),
        (
            "garbage header",
            Some(npy("<f4", "(60, 4", &f32s(240, 0.0))),
        ),
    ];
    match kind {
        Kind::FloatMatrix => d.extend([
            ("truncated", Some(npy("<f4", "(60, 4)", &f32s(100, 0.5)))),
            ("one axis", Some(npy("<f4", "(240,)", &f32s(240, 0.25)))),
            (
                "three axes",
                Some(npy("<f4", "(60, 2, 2)", &f32s(240, 0.25))),
            ),
            ("zero rows", Some(npy("<f4", "(0, 4)", &[]))),
            ("nan", Some(npy("<f4", "(60, 4)", &f32s(240, f32::NAN)))),
            (
                "inf",
                Some(npy("<f4", "(60, 4)", &f32s(240, f32::INFINITY))),
            ),
            ("integers", Some(npy("<i8", "(60, 4)", &i64s(240, 1)))),
        ]),
        Kind::IntLabels => d.extend([
            ("truncated", Some(npy("<i8", "(60,)", &i64s(30, 0)))),
            ("floats", Some(npy("<f4", "(60,)", &f32s(60, 0.5)))),
            ("out of range", Some(npy("<i8", "(60,)", &i64s(60, 300)))),
            ("negative", Some(npy("<i8", "(60,)", &i64s(60, -3)))),
            ("wrong length", Some(npy("<i8", "(7,)", &i64s(7, 0)))),
            ("all ignored", Some(npy("<i8", "(60,)", &i64s(60, 255)))),
        ]),
        Kind::FloatAny => d.extend([
            ("truncated", Some(npy("<f4", "(2, 5, 5)", &f32s(20, 0.5)))),
            ("nan", Some(npy("<f4", "(2, 5, 5)", &f32s(50, f32::NAN)))),
            ("wrong shape", Some(npy("<f4", "(2, 25)", &f32s(50, 0.5)))),
            ("integers", Some(npy("<i8", "(2, 5, 5)", &i64s(50, 1)))),
        ]),
        Kind::IntAny => d.extend([
            ("truncated", Some(npy("<i8", "(2, 5, 5)", &i64s(20, 0)))),
            ("floats", Some(npy("<f4", "(2, 5, 5)", &f32s(50, 0.5)))),
            (
                "out of range",
                Some(npy("<i8", "(2, 5, 5)", &i64s(50, 300))),
            ),
            ("negative", Some(npy("<i8", "(2, 5, 5)", &i64s(50, -2)))),
            ("wrong shape", Some(npy("<i8", "(2, 25)", &i64s(50, 0)))),
        ]),
    }
    d
}

/// The valid inputs every case starts from.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let x = Array2::from_shape_fn((60, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.3);
        write_npy(&p("x.npy"), &x).unwrap();
        write_npy(&p("y.npy"), &Array1::from_shape_fn(60, |i| (i % 3) as i64)).unwrap();
        let probs = Array2::from_shape_fn((60, 3), |(i, k)| if i % 3 == k { 0.8f32 } else { 0.1 });
        write_npy(&p("probs.npy"), &probs).unwrap();
        write_npy(
            &p("groups.npy"),
            &Array1::from_shape_fn(60, |i| (i / 10) as i64),
        )
        .unwrap();
        let maps = Array3::from_shape_fn((2, 5, 5), |(b, y, x)| ((b + y + x) % 3) as i64);
        write_npy(&p("pred.npy"), &maps).unwrap();
        write_npy(&p("gt.npy"), &maps).unwrap();
        let scores = Array3::from_shape_fn((2, 5, 5), |(b, y, x)| (b + y * 5 + x) as f32);
        write_npy(&p("scores.npy"), &scores).unwrap();
        let alab = Array3::from_shape_fn((2, 5, 5), |(_, y, _)| i64::from(y > 2));
        write_npy(&p("alab.npy"), &alab).unwrap();
        let ok = run(&[
            "fit-gmm",
            "--features",
            p("x.npy").to_str().unwrap(),
            "--labels",
            p("y.npy").to_str().unwrap(),
            "--components",
            "2",
            "--out",
            p("params.npz").to_str().unwrap(),
        ]);
        assert!(ok.0 == Some(0), "{}", ok.1);
        Self { dir }
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One command line with `{slot}` standing for the defective file; the others valid.
struct Template {
    name: &'static str,
    kind: Kind,
    args: Vec<String>,
    /// An output path the command would write (must survive a failure untouched).
    out: Option<PathBuf>,
}

fn templates(inp: &Inputs) -> Vec<Template> {
    let p = |n: &str| inp.path(n).to_string_lossy().into_owned();
    let out = inp.path("out.npz");
    let o = out.to_string_lossy().into_owned();
    let t = |name, kind, args: &[&str], out: Option<&PathBuf>| Template {
        name,
        kind,
        args: args.iter().map(|s| s.to_string()).collect(),
        out: out.cloned(),
    };
    let (x, y, probs) = (p("x.npy"), p("y.npy"), p("probs.npy"));
    let (pred, gt, scores, alab, params) = (
        p("pred.npy"),
        p("gt.npy"),
        p("scores.npy"),
        p("alab.npy"),
        p("params.npz"),
    );
    vec![
        t(
            "fit-gmm --features",
            Kind::FloatMatrix,
            &[
                "fit-gmm",
                "--features",
                "{slot}",
                "--labels",
                &y,
                "--components",
                "2",
                "--out",
                &o,
            ],
            Some(&out),
        ),
        t(
            "fit-gmm --labels",
            Kind::IntLabels,
            &[
                "fit-gmm",
                "--features",
                &x,
                "--labels",
                "{slot}",
                "--components",
                "2",
                "--out",
                &o,
            ],
            Some(&out),
        ),
        t(
            "score --features",
            Kind::FloatMatrix,
            &[
                "score",
                "--params",
                &params,
                "--features",
                "{slot}",
                "--out",
                &o,
            ],
            Some(&out),
        ),
        t(
            "metrics seg --pred",
            Kind::IntAny,
            &[
                "metrics",
                "seg",
                "--pred",
                "{slot}",
                "--gt",
                &gt,
                "--classes",
                "3",
            ],
            None,
        ),
        t(
            "metrics seg --gt",
            Kind::IntAny,
            &[
                "metrics",
                "seg",
                "--pred",
                &pred,
                "--gt",
                "{slot}",
                "--classes",
                "3",
            ],
            None,
        ),
        t(
            "metrics anomaly --scores",
            Kind::FloatAny,
            &[
                "metrics", "anomaly", "--scores", "{slot}", "--labels", &alab,
            ],
            None,
        ),
        t(
            "metrics anomaly --labels",
            Kind::IntAny,
            &[
                "metrics", "anomaly", "--scores", &scores, "--labels", "{slot}",
            ],
            None,
        ),
        t(
            "metrics calibration --probs",
            Kind::FloatMatrix,
            &[
                "metrics",
                "calibration",
                "--probs",
                "{slot}",
                "--labels",
                &y,
            ],
            None,
        ),
        t(
            "metrics calibration --labels",
            Kind::IntLabels,
            &[
                "metrics",
                "calibration",
                "--probs",
                &probs,
                "--labels",
                "{slot}",
            ],
            None,
        ),
        t(
            "metrics calibration --groups",
            Kind::IntLabels,
            &[
                "metrics",
                "calibration",
                "--probs",
                &probs,
                "--labels",
                &y,
                "--groups",
                "{slot}",
            ],
            None,
        ),
        t(
            "metrics anomaly --groups",
            Kind::IntAny,
            &[
                "metrics", "anomaly", "--scores", &scores, "--labels", &alab, "--groups", "{slot}",
            ],
            None,
        ),
    ]
}

/// Defects a slot legitimately accepts (the command succeeds on them by design).
fn accepted(template: &str, defect: &str) -> bool {
    matches!(
        (template, defect),
        // any shape of ids is fine when the count matches; 255 is an ordinary id
        ("metrics calibration --groups", "all ignored")
            // labels of the anomaly split with image ids: a (2, 25) map with the same count
            | ("metrics anomaly --groups", "wrong shape")
            // an all-ignore anomaly map of ids > 255 is still a valid id map
            | ("metrics anomaly --groups", "out of range")
    )
}

fn check(case: &str, code: Option<i32>, stderr: &str, failures: &mut Vec<String>) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let problem = match code {
        None => Some("killed by a signal (abort)".to_string()),
        Some(0) => Some("exit 0 on bad input".to_string()),
        Some(101) => Some("panic (exit 101)".to_string()),
        Some(c) if c != 1 && c != 2 => Some(format!("exit code {c}")),
        _ if stderr.contains("panicked") => Some("panic message".to_string()),
        _ if lines.len() != 1 => Some(format!("{} lines on stderr", lines.len())),
        _ if !lines[0].starts_with("error:") => Some("no `error:` prefix".to_string()),
        _ => None,
    };
    if let Some(p) = problem {
        failures.push(format!("{case}: {p}: {}", stderr.trim()));
    }
}

#[test]
fn every_bad_input_gets_one_error_line_and_clobbers_nothing() {
    let inp = Inputs::new();
    let sentinel = b"an earlier good output".to_vec();
    let mut failures = Vec::new();
    let mut cases = 0;
    for t in templates(&inp) {
        for (defect, bytes) in defects(t.kind) {
            if accepted(t.name, defect) {
                continue;
            }
            let slot = inp.path(&format!("slot-{}.npy", cases));
            if let Some(b) = &bytes {
                std::fs::write(&slot, b).unwrap();
            }
            if let Some(out) = &t.out {
                std::fs::write(out, &sentinel).unwrap();
            }
            let args: Vec<String> = t
                .args
                .iter()
                .map(|a| a.replace("{slot}", &slot.to_string_lossy()))
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, stderr) = run(&args);
            let case = format!("{} ← {defect}", t.name);
            check(&case, code, &stderr, &mut failures);
            if let Some(out) = &t.out {
                if std::fs::read(out).ok().as_deref() != Some(&sentinel[..]) {
                    failures.push(format!("{case}: the existing output was replaced"));
                }
            }
            cases += 1;
        }
    }
    // numeric flags out of range
    let (x, y, probs) = (inp.path("x.npy"), inp.path("y.npy"), inp.path("probs.npy"));
    let out = inp.path("out.npz");
    let fit = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "fit-gmm",
            "--features",
            x.to_str().unwrap(),
            "--labels",
            y.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cal = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "metrics",
            "calibration",
            "--probs",
            probs.to_str().unwrap(),
            "--labels",
            y.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let flag_cases: Vec<(&str, Vec<String>)> = vec![
        ("--components 0", fit(&["--components", "0"])),
        (
            "--components 1e18",
            fit(&["--components", "1000000000000000000"]),
        ),
        ("--components > class pixels", fit(&["--components", "300"])),
        ("--components -1", fit(&["--components", "-1"])),
        ("--iters 0", fit(&["--iters", "0"])),
        ("--iters 1e11", fit(&["--iters", "100000000000"])),
        ("--eps 0", fit(&["--eps", "0"])),
        ("--eps -0.5", fit(&["--eps", "-0.5"])),
        ("--eps nan", fit(&["--eps", "nan"])),
        ("--eps 1e-300", fit(&["--eps", "1e-300"])),
        ("--eps 1e300", fit(&["--eps", "1e300"])),
        ("--eps text", fit(&["--eps", "abc"])),
        ("--sinkhorn-iters 0", fit(&["--sinkhorn-iters", "0"])),
        ("--var-reg -1", fit(&["--var-reg", "-1"])),
        ("--momentum 1.5", fit(&["--momentum", "1.5"])),
        (
            "same output twice",
            fit(&["--responsibilities", out.to_str().unwrap()]),
        ),
        ("--bins 0", cal(&["--bins", "0"])),
        ("--bins 1e12", cal(&["--bins", "1000000000000"])),
        (
            "--bootstrap 0",
            cal(&[
                "--groups",
                inp.path("groups.npy").to_str().unwrap(),
                "--bootstrap",
                "0",
            ]),
        ),
        ("--bootstrap without groups", cal(&["--bootstrap", "10"])),
        (
            "--seed -1",
            cal(&[
                "--groups",
                inp.path("groups.npy").to_str().unwrap(),
                "--seed",
                "-1",
            ]),
        ),
        ("unknown flag", cal(&["--bogus"])),
        (
            "seg --classes 0",
            [
                "metrics",
                "seg",
                "--pred",
                inp.path("pred.npy").to_str().unwrap(),
                "--gt",
                inp.path("gt.npy").to_str().unwrap(),
                "--classes",
                "0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        (
            "seg --classes 2 (labels up to 2)",
            [
                "metrics",
                "seg",
                "--pred",
                inp.path("pred.npy").to_str().unwrap(),
                "--gt",
                inp.path("gt.npy").to_str().unwrap(),
                "--classes",
                "2",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        (
            "anomaly scores and labels of other shapes",
            [
                "metrics",
                "anomaly",
                "--scores",
                inp.path("x.npy").to_str().unwrap(),
                "--labels",
                inp.path("y.npy").to_str().unwrap(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
    ];
    for (name, args) in flag_cases {
        std::fs::write(&out, &sentinel).unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = run(&args);
        check(name, code, &stderr, &mut failures);
        if std::fs::read(&out).ok().as_deref() != Some(&sentinel[..]) {
            failures.push(format!("{name}: the existing output was replaced"));
        }
        cases += 1;
    }
    assert!(cases >= 60 + 21, "the corpus has {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_helper_writes_files_numpy_would_read() {
    // the hand-made header of a valid array reads back through the crate's reader
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let data: Vec<u8> = (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect();
    std::fs::write(&p, npy("<f4", "(2, 3)", &data)).unwrap();
    let a = gmmseg::io::npy::read_matrix(&p).unwrap();
    assert_eq!(a.dim(), (2, 3));
    assert_eq!(a[[1, 2]], 5.0);
}
