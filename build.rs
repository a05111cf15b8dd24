//! Computes the code fingerprint of the experiment cache (`src/experiments/fingerprint.rs`
//! says what it covers) and hands it to the crate as `GMMSEG_CODE_FINGERPRINT`.

#[path = "src/experiments/fingerprint.rs"]
#[allow(dead_code)]
mod fingerprint;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed={}", fingerprint::LOCK_ENTRY);
    let files = fingerprint::covered_inputs(std::path::Path::new("."))
        .expect("read src/ and Cargo.lock for the code fingerprint");
    for (path, _) in &files {
        if path != fingerprint::LOCK_ENTRY {
            println!("cargo:rerun-if-changed=src/{path}");
        }
    }
    println!(
        "cargo:rustc-env=GMMSEG_CODE_FINGERPRINT={}",
        fingerprint::fingerprint(&files)
    );
}
