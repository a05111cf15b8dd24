//! What the command-line tests share: running the built `gmmseg` and naming files in a
//! scratch folder.

use std::path::Path;
use std::process::Command;

/// Runs `gmmseg ARGS`: (exit status success, stdout, stderr).
pub fn gmmseg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args(args)
        .output()
        .expect("the gmmseg binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dir/name` as a command-line argument.
pub fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}
