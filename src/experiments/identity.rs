//! What identifies a run and a trained model: the [`RunIdentity`] whose hash keys a row of
//! the cache, the [`model_key`] of a trained model, the build's [`code_fingerprint`], and
//! the file-name-safe [`dataset_slug`].

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{fingerprint, EvalSettings, Study};
use crate::error::{GmmSegError, Result};
use crate::train::config::TrainConfig;

/// Everything that identifies one run of a study: the hash of its JSON is the cache key of
/// its rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Study name.
    pub study: String,
    /// The spec's name within the study.
    pub spec: String,
    /// Dataset spec.
    pub dataset: String,
    /// Seed.
    pub seed: u64,
    /// Full training configuration (seed and dataset included).
    pub train: TrainConfig,
    /// Evaluation settings.
    pub eval: EvalSettings,
    /// [`code_fingerprint`] of the code that trained and measured the run.
    pub code: String,
}

/// SHA-256 (hex) of a serialisable value's JSON.
pub(crate) fn sha256_json<T: Serialize>(v: &T) -> String {
    let json = serde_json::to_string(v).expect("serialisable");
    Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of this build's model and evaluation code (16 hex digits), computed by
/// `build.rs` over the sources that [`fingerprint`] covers. Every run key and model key
/// includes it: rows and models of other code are retrained, never reused.
pub fn code_fingerprint() -> &'static str {
    env!("GMMSEG_CODE_FINGERPRINT")
}

/// The fingerprint [`code_fingerprint`] would have for the crate at `root`: its sources
/// under `root/src` and the numeric dependencies locked in `root/Cargo.lock` (the same
/// computation as `build.rs`).
///
/// # Errors
/// [`GmmSegError::Io`] when the tree or the lock file cannot be read.
pub fn fingerprint_of_crate(root: &Path) -> Result<String> {
    let files = fingerprint::covered_inputs(root).map_err(|e| GmmSegError::io(root, e))?;
    Ok(fingerprint::fingerprint(&files))
}

impl RunIdentity {
    /// The identity of a run of the code with fingerprint `code`.
    pub fn new(
        study: Study,
        spec: &str,
        dataset: &str,
        seed: u64,
        train: TrainConfig,
        eval: EvalSettings,
        code: &str,
    ) -> Self {
        RunIdentity {
            study: study.name().into(),
            spec: spec.into(),
            dataset: dataset.into(),
            seed,
            train,
            eval,
            code: code.into(),
        }
    }

    /// The cache key of the run's rows.
    pub fn hash(&self) -> String {
        sha256_json(self)
    }
}

/// The key of a trained model: hash of the code fingerprint, the full training config, the
/// evaluation settings and the dataset (first 16 hex digits).
pub fn model_key(code: &str, train: &TrainConfig, eval: &EvalSettings, dataset: &str) -> String {
    sha256_json(&(code, train, eval, dataset))[..16].to_string()
}

/// A file-name-safe name of a dataset spec, for the per-dataset folder of summaries and
/// figures: `synthscapes`, `digitscenes`, `folder:/a/b` → `folder_a_b` (at most 64
/// characters, a hash suffix keeping long specs apart).
pub fn dataset_slug(dataset: &str) -> String {
    let mut s: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_').to_string();
    if s.len() > 64 {
        format!("{}_{}", &s[..48], &sha256_json(&dataset)[..8])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::ExperimentProfile;

    fn eval() -> EvalSettings {
        ExperimentProfile::by_name("tiny")
            .unwrap()
            .check()
            .unwrap()
            .eval_settings()
    }

    #[test]
    fn keys_change_with_the_code_fingerprint() {
        let eval = eval();
        let t = TrainConfig::quick();
        assert_ne!(
            model_key("aaaa", &t, &eval, "synthscapes"),
            model_key("bbbb", &t, &eval, "synthscapes")
        );
        let id = |code: &str| {
            RunIdentity::new(
                Study::Em,
                "s",
                "synthscapes",
                0,
                t.clone(),
                eval.clone(),
                code,
            )
            .hash()
        };
        assert_ne!(id("aaaa"), id("bbbb"));
        assert_eq!(code_fingerprint().len(), 16);
    }

    /// The build's fingerprint is the one computed over this checkout's `src/` and
    /// `Cargo.lock`, and editing one line of the EM code changes it, while comments,
    /// formatting, unit tests and the presentation code do not.
    #[test]
    fn one_changed_line_of_the_em_code_changes_the_fingerprint() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(fingerprint_of_crate(root).unwrap(), code_fingerprint());
        let dir = copy_of_crate(root);
        let src = dir.path().join("src");
        let base = fingerprint_of_crate(dir.path()).unwrap();
        let online = src.join("gmm/online.rs");
        let text = std::fs::read_to_string(&online).unwrap();
        let edit = |from: &str, to: &str| {
            assert!(text.contains(from), "{from}");
            std::fs::write(&online, text.replacen(from, to, 1)).unwrap();
            fingerprint_of_crate(dir.path()).unwrap()
        };
        assert_ne!(edit("self.iteration += 1;", "self.iteration += 2;"), base);
        assert_eq!(edit("//! Online EM", "//! Online EM, edited"), base);
        assert_eq!(edit("self.iteration += 1;", "self.iteration  +=  1;"), base);
        assert_eq!(
            edit("self.iteration += 1;", "self.iteration\n            += 1;"),
            base
        );
        std::fs::write(&online, &text).unwrap();
        let plot = src.join("plot/mod.rs");
        let p = std::fs::read_to_string(&plot).unwrap();
        std::fs::write(&plot, format!("{p}\nfn extra() {{}}\n")).unwrap();
        assert_eq!(fingerprint_of_crate(dir.path()).unwrap(), base);
    }

    /// Another locked version of a crate that computes numbers (the matrix products) changes
    /// the fingerprint; another version of a presentation crate does not.
    #[test]
    fn the_locked_version_of_a_numeric_dependency_changes_the_fingerprint() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        let dir = copy_of_crate(root);
        let with_lock = |text: &str| {
            std::fs::write(dir.path().join("Cargo.lock"), text).unwrap();
            fingerprint_of_crate(dir.path()).unwrap()
        };
        let base = with_lock(&lock);
        let bump = |name: &str| {
            let at = lock
                .find(&format!("name = \"{name}\"\nversion = \""))
                .unwrap_or_else(|| panic!("{name} is locked"));
            let version = at + format!("name = \"{name}\"\nversion = \"").len();
            format!("{}9{}", &lock[..version], &lock[version..])
        };
        assert_ne!(with_lock(&bump("gemm")), base);
        assert_ne!(with_lock(&bump("dfdx")), base);
        assert_eq!(with_lock(&bump("polars")), base);
        std::fs::remove_file(dir.path().join("Cargo.lock")).unwrap();
        assert_ne!(fingerprint_of_crate(dir.path()).unwrap(), base);
    }

    /// A scratch copy of what the fingerprint reads: `src/` and `Cargo.lock`.
    fn copy_of_crate(root: &Path) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        copy_tree(&root.join("src"), &src);
        std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
        dir
    }

    fn copy_tree(from: &Path, to: &Path) {
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
                copy_tree(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
}
