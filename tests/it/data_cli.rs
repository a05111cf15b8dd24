//! The `gmmseg data` command line: export, stats (--json) and preview, with the flags that
//! the issue fixes as a contract.

use std::process::Command;

fn gmmseg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_then_stats_and_preview_of_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("anomaly");
    let o = out.to_str().unwrap();
    let (ok, _, err) = gmmseg(&[
        "data",
        "export",
        "--dataset",
        "synthscapes",
        "--split",
        "anomaly",
        "--count",
        "5",
        "--out",
        o,
    ]);
    assert!(ok, "{err}");
    for sub in ["images", "labels", "anomaly"] {
        assert_eq!(
            std::fs::read_dir(out.join(sub)).unwrap().count(),
            5,
            "{sub}"
        );
    }
    let classes = std::fs::read_to_string(out.join("classes.txt")).unwrap();
    assert_eq!(classes.lines().next(), Some("road"));

    let spec = format!("folder:{o}");
    let (ok, stdout, err) = gmmseg(&[
        "data",
        "stats",
        "--dataset",
        &spec,
        "--split",
        "anomaly",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["images"], 5);
    assert!(v["anomalous"].as_u64().unwrap() > 0);
    let f: f64 = v["frequencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!((f - 1.0).abs() < 1e-9);

    let png = dir.path().join("grid.png");
    let (ok, _, err) = gmmseg(&[
        "data",
        "preview",
        "--dataset",
        &spec,
        "--split",
        "anomaly",
        "--count",
        "4",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let img = image::open(&png).unwrap();
    assert!(img.width() > 4 * 64 && img.height() > 64);

    let (ok, stdout, err) = gmmseg(&[
        "data",
        "stats",
        "--dataset",
        "digitscenes",
        "--split",
        "test",
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("background"));
}

#[test]
fn bad_arguments_fail_with_one_line_errors() {
    let (ok, _, err) = gmmseg(&["data", "stats", "--dataset", "mnist", "--split", "train"]);
    assert!(!ok);
    assert!(err.contains("unknown dataset"), "{err}");
    let (ok, _, err) = gmmseg(&[
        "data",
        "export",
        "--dataset",
        "folder:/nonexistent/x",
        "--split",
        "train",
        "--count",
        "1",
        "--out",
        "/tmp/never",
    ]);
    assert!(!ok);
    assert!(err.starts_with("error:"), "{err}");
}

#[test]
fn data_dir_can_be_overridden_by_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args([
            "data",
            "stats",
            "--dataset",
            "digitscenes",
            "--split",
            "train",
        ])
        .env("GMMSEG_DATA_DIR", "/nonexistent/gmmseg-data")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/gmmseg-data/mnist-10k"), "{err}");
}
