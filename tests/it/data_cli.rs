//! The `gmmseg data` command line: export, stats (--json) and preview, with the flags that
//! the issue fixes as a contract.

use super::cli::gmmseg;
use std::process::Command;

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

#[test]
fn export_is_atomic_and_never_merges_into_a_non_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let export = |dataset: &str, out: &std::path::Path, count: &str, force: bool| {
        let o = out.to_str().unwrap().to_string();
        let mut args = vec![
            "data",
            "export",
            "--dataset",
            dataset,
            "--split",
            "train",
            "--count",
            count,
            "--out",
            &o,
        ];
        if force {
            args.push("--force");
        }
        gmmseg(&args)
    };
    let a = dir.path().join("a");
    let (ok, _, err) = export("synthscapes", &a, "3", false);
    assert!(ok, "{err}");
    // a second export into the non-empty folder is refused, and leaves it alone
    let (ok, _, err) = export("synthscapes", &a, "2", false);
    assert!(
        !ok && err.contains("--force") && err.contains("non-empty"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(a.join("images")).unwrap().count(), 3);
    // --force replaces it as a whole (2 samples, not 3 merged with 2)
    let (ok, _, err) = export("synthscapes", &a, "2", true);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_dir(a.join("images")).unwrap().count(), 2);
    // an export that fails part-way (a corrupt label) leaves the target as it was and no
    // staging folder behind
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::rename(&a, src.join("train")).unwrap();
    std::fs::copy(src.join("train/classes.txt"), src.join("classes.txt")).ok();
    let labels: Vec<_> = std::fs::read_dir(src.join("train/labels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut sorted = labels.clone();
    sorted.sort();
    std::fs::write(sorted.last().unwrap(), b"not a png").unwrap();
    let b = dir.path().join("b");
    let (ok, _, err) = export("synthscapes", &b, "1", false);
    assert!(ok, "{err}");
    let before = std::fs::read(b.join("classes.txt")).unwrap();
    let spec = format!("folder:{}", src.display());
    let (ok, _, err) = export(&spec, &b, "2", true);
    assert!(!ok, "the corrupt label must fail the export");
    assert!(err.contains("labels"), "fails on the label file: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(b.join("classes.txt")).unwrap(), before);
    assert_eq!(std::fs::read_dir(b.join("images")).unwrap().count(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
