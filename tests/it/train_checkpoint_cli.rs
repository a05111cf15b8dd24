//! Checkpoints through the command line: identical runs write identical bytes, a changed
//! byte is caught by `eval` and by resume, `--steps` is part of a run's identity (extending
//! is `--extend-to`), and a run killed mid-way resumes to the bytes of an uninterrupted one.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gmmseg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gmmseg"))
}

/// `gmmseg train` on the toy set with the GMMSeg head (GMM state and memory in the
/// checkpoint), `steps` steps into `out`, plus `extra` flags.
fn train_command(out: &Path, steps: usize, extra: &[&str]) -> Command {
    let mut c = gmmseg();
    c.args([
        "train",
        "--dataset",
        "toy",
        "--head",
        "gmmseg",
        "--decoder",
        "fcn",
    ])
    .args(["--steps", &steps.to_string(), "--seed", "3"])
    .args(extra)
    .arg("--out")
    .arg(out);
    c
}

fn train(out: &Path, steps: usize, extra: &[&str]) -> std::process::Output {
    train_command(out, steps, extra).output().unwrap()
}

fn tensors(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("checkpoint.safetensors")).unwrap()
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn one_line_error(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "should fail");
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn identical_runs_write_identical_checkpoint_bytes_and_a_flipped_bit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&train(&a, 3, &[]));
    ok(&train(&b, 3, &[]));
    assert!(
        tensors(&a) == tensors(&b),
        "checkpoint bytes differ between identical runs"
    );
    // flip one bit in the last tensor byte: eval and resume both refuse, naming the file
    let mut bytes = tensors(&b);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(b.join("checkpoint.safetensors"), &bytes).unwrap();
    let e = gmmseg()
        .args(["eval", "--dataset", "toy", "--checkpoint"])
        .arg(&b)
        .output()
        .unwrap();
    let e = one_line_error(&e);
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("corrupt"),
        "{e}"
    );
    let e = one_line_error(&train(&b, 3, &[]));
    assert!(e.contains("corrupt"), "{e}");
}

#[test]
fn steps_are_part_of_the_identity_and_extend_to_continues_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(&train(&run, 2, &[]));
    let before = tensors(&run);
    // a longer --steps on the finished run is refused, naming the field and the way out
    let e = one_line_error(&train(&run, 4, &[]));
    assert!(
        e.contains("steps: 2 → 4") && e.contains("--extend-to 4"),
        "{e}"
    );
    assert!(
        tensors(&run) == before,
        "a refused resume leaves the checkpoint alone"
    );
    // --extend-to must exceed --steps
    let e = one_line_error(&train(&run, 2, &["--extend-to", "2"]));
    assert!(e.contains("--extend-to"), "{e}");
    // the same command plus --extend-to trains on; the config records the extension
    ok(&train(&run, 2, &["--extend-to", "4"]));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(meta["step"], 4);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["steps"], 4);
    assert_eq!(cfg["extended_from"], serde_json::json!([2]));
    // extending a folder without a checkpoint is refused
    let e = one_line_error(&train(&dir.path().join("none"), 3, &["--extend-to", "6"]));
    assert!(e.contains("no checkpoint"), "{e}");
}

#[test]
fn a_run_killed_mid_way_resumes_to_the_bytes_of_an_uninterrupted_one() {
    let steps = 40;
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    let flags = ["--checkpoint-every", "1"];
    ok(&train(&whole, steps, &flags));
    // start the same run, kill it (SIGKILL) once a checkpoint before the end exists
    let mut child = train_command(&killed, steps, &flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut at_kill = None;
    while start.elapsed() < Duration::from_secs(120) {
        let step = std::fs::read_to_string(killed.join("checkpoint.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|m| m["step"].as_u64());
        if let Some(s) = step.filter(|&s| s >= 2) {
            child.kill().unwrap();
            at_kill = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait().unwrap();
    let at_kill = at_kill.expect("a checkpoint appeared");
    assert!(
        (at_kill as usize) < steps,
        "the run finished ({at_kill} steps) before it could be killed"
    );
    // resume with the same command
    let o = train(&killed, steps, &flags);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming"));
    assert!(
        tensors(&whole) == tensors(&killed),
        "resumed from step ≥ {at_kill}: the final checkpoint differs from the uninterrupted run's"
    );
}
