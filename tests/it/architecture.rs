//! The layering README's "Architecture" section states, checked on the sources: no module
//! of `src/` names (in code, not in comments) a module of a layer above its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module and the modules its code may name (`crate::<module>`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("io", &["error"]),
    ("ops", &["error"]),
    ("data", &["error", "io"]),
    ("gmm", &["error", "io", "ops"]),
    ("metrics", &["error", "data"]),
    ("nn", &["error", "io", "ops", "data", "gmm", "metrics"]),
    ("plot", &["error", "io", "ops", "data", "gmm", "metrics"]),
    (
        "train",
        &["error", "io", "ops", "data", "gmm", "metrics", "nn", "plot"],
    ),
    (
        "experiments",
        &[
            "error", "io", "ops", "data", "gmm", "metrics", "nn", "plot", "train",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules named as `crate::<name>` in the code of `file` (comments dropped).
fn named_modules(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::Result`, `crate::GmmSegError`: the root's re-exports of `error`
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, allowed) in ALLOWED {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let flat = src.join(format!("{module}.rs"));
        if flat.is_file() {
            files.push(flat);
        }
        assert!(!files.is_empty(), "no sources for module {module}");
        for f in files {
            for name in named_modules(&f) {
                if name != *module && !allowed.contains(&name.as_str()) {
                    violations.push(format!("{} names crate::{name}", f.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_only_unsafe_gemm_call_is_in_ops_gemm() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let callers: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(|l| l.split("//").next().unwrap_or("").contains("gemm::gemm("))
        })
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert_eq!(callers, vec!["ops/gemm.rs".to_string()]);
}
