//! The command-line contract: `gmmseg train` then `gmmseg eval --json` with the fixed keys.

use std::process::Command;

fn gmmseg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gmmseg"))
}

#[test]
fn train_then_eval_json_has_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let st = gmmseg()
        .args([
            "train",
            "--dataset",
            "toy",
            "--head",
            "softmax",
            "--decoder",
            "fcn",
            "--profile",
            "quick",
            "--steps",
            "3",
            "--seed",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        out.join("checkpoint.safetensors").exists()
            && out.join("checkpoint.json").exists()
            && out.join("config.json").exists()
    );

    for (split, anomaly) in [("val", false), ("anomaly", true)] {
        let st = gmmseg()
            .args(["eval", "--checkpoint"])
            .arg(&out)
            .args(["--dataset", "toy", "--split", split, "--json"])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        for k in ["miou", "acc", "ece", "nll", "brier"] {
            assert!(v[k].as_f64().is_some(), "{split}: missing {k} in {v}");
        }
        assert_eq!(v.get("anomaly").is_some(), anomaly, "{split}: {v}");
        if anomaly {
            for s in ["msp", "entropy", "maxlogit"] {
                for m in ["auroc", "ap", "fpr95"] {
                    assert!(
                        v["anomaly"][s][m].as_f64().is_some(),
                        "missing anomaly.{s}.{m}"
                    );
                }
            }
        }
    }
}

#[test]
fn unknown_or_unavailable_datasets_and_other_configs_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let st = gmmseg()
        .args(["train", "--dataset", "nosuch", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("unknown dataset"));
    let st = gmmseg()
        .args(["train", "--dataset", "toy", "--profile", "medium", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&st.stderr).contains("profile"));

    // a run directory written with seed 1 refuses seed 2
    let out = dir.path().join("r");
    let ok = gmmseg()
        .args([
            "train",
            "--dataset",
            "toy",
            "--decoder",
            "fcn",
            "--steps",
            "1",
            "--seed",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let st = gmmseg()
        .args([
            "train",
            "--dataset",
            "toy",
            "--decoder",
            "fcn",
            "--steps",
            "1",
            "--seed",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(
        String::from_utf8_lossy(&st.stderr).contains("seed: 1 → 2"),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// The `gap` study's factors are `train` flags: they reach the saved configuration, and a
/// mixture factor on the softmax head fails in one line naming the flag.
#[test]
fn gap_factor_flags_reach_the_config_and_are_refused_for_softmax() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let st = gmmseg()
        .args([
            "train",
            "--dataset",
            "toy",
            "--head",
            "gmmseg",
            "--steps",
            "2",
            "--relative-var-floor",
            "0.1",
            "--learn-temperature",
            "true",
            "--log-prior",
            "true",
            "--momentum-warmup",
            "true",
            "--prefill-batches",
            "2",
            "--em-on-eval-features",
            "true",
            "--projection-relu",
            "false",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let g = &cfg["head"];
    assert_eq!(g["online"]["gmm"]["var_floor"], "relative");
    assert_eq!(g["online"]["gmm"]["var_reg"].as_f64().unwrap() as f32, 0.1);
    for k in ["learn_temperature", "log_prior", "em_on_eval_features"] {
        assert_eq!(g[k], true, "{k}");
    }
    assert_eq!(g["online"]["momentum_warmup"], true);
    assert_eq!(g["online"]["prefill_batches"], 2);
    assert_eq!(cfg["net"]["projection_relu"], false);

    let st = gmmseg()
        .args([
            "train",
            "--dataset",
            "toy",
            "--head",
            "softmax",
            "--log-prior",
            "true",
            "--out",
        ])
        .arg(dir.path().join("never"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--log-prior"), "{err}");
    assert!(!dir.path().join("never").join("checkpoint.json").exists());
}
