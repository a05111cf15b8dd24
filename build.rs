//! Computes the code fingerprint of the experiment cache (`src/experiments/fingerprint.rs`
//! says what it covers) and hands it to the crate as `GMMSEG_CODE_FINGERPRINT`.

#[path = "src/experiments/fingerprint.rs"]
#[allow(dead_code)]
mod fingerprint;

fn main() {
    let src = std::path::Path::new("src");
    println!("cargo:rerun-if-changed=src");
    let files = fingerprint::covered_sources(src).expect("read src/ for the code fingerprint");
    for (path, _) in &files {
        println!("cargo:rerun-if-changed=src/{path}");
    }
    println!(
        "cargo:rustc-env=GMMSEG_CODE_FINGERPRINT={}",
        fingerprint::fingerprint(&files)
    );
}
