//! The committed results folders are what they claim to be: every `claims.csv` verdict
//! follows, by the paired rule, from the per-seed rows of its study CSV, and no study CSV
//! has two rows for one cell.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use gmmseg::experiments::{
    dataset_slug, decide_paired, read_rows, ClaimKind, RunRow, Study, NOT_WORSE_MARGIN,
};
use polars::prelude::*;

fn results_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/results");
    ["quick", "full"]
        .iter()
        .map(|p| root.join(p))
        .filter(|d| d.is_dir())
        .collect()
}

fn study_rows(dir: &Path, study: &str) -> Vec<RunRow> {
    read_rows(&dir.join(format!("{study}.csv"))).unwrap()
}

#[test]
fn no_study_csv_has_a_duplicate_cell() {
    for dir in results_dirs() {
        for study in Study::ALL {
            let rows = study_rows(&dir, study.name());
            let mut seen = HashSet::new();
            for r in &rows {
                let cell = (
                    &r.dataset,
                    &r.variant,
                    &r.group,
                    r.param.map(f64::to_bits),
                    r.seed,
                    &r.metric,
                );
                assert!(
                    seen.insert(cell),
                    "{}/{study}.csv: two rows for {cell:?}",
                    dir.display()
                );
            }
            // one code per dataset: the rows of one version of the code (a profile is
            // retrained one dataset at a time, so two datasets may differ for a while)
            let datasets: HashSet<&str> = rows.iter().map(|r| r.dataset.as_str()).collect();
            for dataset in datasets {
                let codes: HashSet<&str> = rows
                    .iter()
                    .filter(|r| r.dataset == dataset)
                    .map(|r| r.code.as_str())
                    .collect();
                assert!(
                    codes.len() <= 1,
                    "{}/{study}.csv mixes codes {codes:?} for {dataset}",
                    dir.display()
                );
                assert!(
                    !codes.contains(""),
                    "{}/{study}.csv has rows of {dataset} without a code",
                    dir.display()
                );
            }
        }
    }
}

/// The claim kind of a claims.csv row, from its statement (the templates' wording).
fn kind_of(claim: &str, b_variant: &str, b_param: Option<f64>) -> ClaimKind {
    if b_variant == "threshold" {
        ClaimKind::AtLeast(b_param.unwrap())
    } else if claim.contains("insensitive") {
        ClaimKind::Within(0.01)
    } else if claim.contains("− 0.01") {
        ClaimKind::NotWorse(NOT_WORSE_MARGIN)
    } else {
        ClaimKind::Better
    }
}

#[test]
fn every_committed_verdict_follows_from_the_per_seed_rows() {
    let mut checked = 0;
    for dir in results_dirs() {
        for sub in std::fs::read_dir(&dir).unwrap() {
            let sub = sub.unwrap().path();
            let claims_csv = sub.join("claims.csv");
            if !claims_csv.is_file() {
                continue;
            }
            let slug = sub.file_name().unwrap().to_string_lossy().to_string();
            let df = CsvReadOptions::default()
                .with_has_header(true)
                .try_into_reader_with_file_path(Some(claims_csv.clone()))
                .unwrap()
                .finish()
                .unwrap();
            let s = |c: &str| -> Vec<String> {
                df.column(c)
                    .unwrap()
                    .cast(&DataType::String)
                    .unwrap()
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| v.unwrap_or("").to_string())
                    .collect()
            };
            let f = |c: &str| -> Vec<Option<f64>> {
                df.column(c)
                    .unwrap()
                    .cast(&DataType::Float64)
                    .unwrap()
                    .f64()
                    .unwrap()
                    .iter()
                    .collect()
            };
            let (study, claim, metric, group) = (s("study"), s("claim"), s("metric"), s("group"));
            let (a_variant, b_variant, verdict) = (s("a_variant"), s("b_variant"), s("verdict"));
            let (a_param, b_param, mean_diff, n, agree) = (
                f("a_param"),
                f("b_param"),
                f("mean_diff"),
                f("n"),
                f("agree"),
            );
            for i in 0..df.height() {
                let rows: Vec<RunRow> = study_rows(&dir, &study[i])
                    .into_iter()
                    .filter(|r| dataset_slug(&r.dataset) == slug)
                    .collect();
                let per_seed = |v: &str, p: Option<f64>| -> BTreeMap<u64, f64> {
                    rows.iter()
                        .filter(|r| {
                            r.variant == v
                                && r.param == p
                                && r.group == group[i]
                                && r.metric == metric[i]
                                && r.value.is_finite()
                        })
                        .map(|r| (r.seed, r.value))
                        .collect()
                };
                let kind = kind_of(&claim[i], &b_variant[i], b_param[i]);
                let a = per_seed(&a_variant[i], a_param[i]);
                let diffs: Vec<f64> = match kind {
                    ClaimKind::AtLeast(v) => a.values().map(|x| x - v).collect(),
                    _ => {
                        let b = per_seed(&b_variant[i], b_param[i]);
                        a.iter()
                            .filter_map(|(s, x)| b.get(s).map(|y| x - y))
                            .collect()
                    }
                };
                let (mean, _, k, v) =
                    decide_paired(kind, &metric[i], &diffs).unwrap_or_else(|| {
                        panic!("{}: no pair for `{}`", claims_csv.display(), claim[i])
                    });
                let at = format!("{} row {}: {}", claims_csv.display(), i + 2, claim[i]);
                assert_eq!(v.name(), verdict[i], "{at}");
                assert_eq!(diffs.len() as f64, n[i].unwrap(), "{at}");
                assert_eq!(k as f64, agree[i].unwrap(), "{at}");
                assert!((mean - mean_diff[i].unwrap()).abs() < 1e-9, "{at}");
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no claims.csv under data/results");
}

/// README's claims tables are generated, not typed: each block equals what
/// `gmmseg claims --update README.md` writes from the committed `claims.csv` it names.
#[test]
fn readme_claims_tables_equal_the_committed_claims_csv() {
    use gmmseg::experiments::report::update_claims_blocks;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (generated, blocks) = update_claims_blocks(&readme, root).unwrap();
    assert!(blocks >= 3, "README has {blocks} generated claims blocks");
    assert!(
        generated == readme,
        "README's claims tables are out of date: run `gmmseg claims --update README.md`"
    );
}

/// The Markdown of a claims.csv has one row per claim, and the `claims` command prints it,
/// checks a Markdown file and refuses a block without its end marker.
#[test]
fn the_claims_command_prints_updates_and_checks() {
    use gmmseg::experiments::report::claims_markdown_from_csv;
    use std::process::Command;
    let csv =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/results/quick/synthscapes/claims.csv");
    let table = claims_markdown_from_csv(&csv).unwrap();
    let claims = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.clone()))
        .unwrap()
        .finish()
        .unwrap()
        .height();
    assert_eq!(
        table.lines().count(),
        claims + 2,
        "header, rule, one line per claim"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args(["claims"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), table);

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&csv, dir.path().join("claims.csv")).unwrap();
    let md = dir.path().join("page.md");
    std::fs::write(
        &md,
        "# Page\n\n<!-- claims: claims.csv -->\nstale\n<!-- /claims -->\nend\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gmmseg"))
            .arg("claims")
            .arg("--update")
            .arg(&md)
            .args(extra)
            .output()
            .unwrap()
    };
    let check = run(&["--check"]);
    assert!(!check.status.success(), "a stale block fails --check");
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("out of date")
            || String::from_utf8_lossy(&check.stderr).contains("differ")
    );
    assert!(run(&[]).status.success());
    let page = std::fs::read_to_string(&md).unwrap();
    assert_eq!(
        page,
        format!("# Page\n\n<!-- claims: claims.csv -->\n{table}<!-- /claims -->\nend\n")
    );
    assert!(run(&["--check"]).status.success());
    std::fs::write(&md, "<!-- claims: claims.csv -->\nno end\n").unwrap();
    let broken = run(&[]);
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("<!-- /claims -->"));
}

/// A block's optional `only=` / `except=` word keeps the named studies' claims or drops them;
/// any other word is refused by name.
#[test]
fn a_claims_block_can_keep_or_drop_studies() {
    use gmmseg::experiments::report::{
        claims_markdown_of_studies, update_claims_blocks, StudyFilter,
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("claims.csv");
    std::fs::write(
        &csv,
        "study,claim,metric,group,a_variant,a_param,b_variant,b_param,n,mean_diff,ci95,lower,upper,agree,verdict\n\
         main_results,one,miou,val,gmmseg,,softmax,,2,0.1,0.2,-0.1,0.3,1,inconclusive\n\
         gap,two,miou,val,log prior,,gmmseg,,2,0.1,0.2,-0.1,0.3,1,inconclusive\n",
    )
    .unwrap();
    let rows = |f: &StudyFilter| {
        let t = claims_markdown_of_studies(&csv, f).unwrap();
        t.lines().count() - 2
    };
    assert_eq!(rows(&StudyFilter::All), 2);
    assert_eq!(rows(&StudyFilter::parse(Some("only=gap")).unwrap()), 1);
    assert_eq!(rows(&StudyFilter::parse(Some("except=gap")).unwrap()), 1);
    let only = claims_markdown_of_studies(&csv, &StudyFilter::Only(vec!["gap".into()])).unwrap();
    assert!(only.contains("| two |") && !only.contains("| one |"));
    let text = "<!-- claims: claims.csv except=gap -->\nold\n<!-- /claims -->\n";
    let (new, n) = update_claims_blocks(text, dir.path()).unwrap();
    assert_eq!(n, 1);
    assert!(new.contains("| one |") && !new.contains("| two |"));
    let bad = "<!-- claims: claims.csv sometimes=gap -->\n<!-- /claims -->\n";
    let err = update_claims_blocks(bad, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("only=STUDIES"), "{err}");
}
