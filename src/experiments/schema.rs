//! The column names of the study tables (runs, summaries, claims): an interface that
//! scripts and other tools read from the CSV headers, so each name is written once, here.

/// Column of the runs and summary tables: study name.
pub const COL_STUDY: &str = "study";
/// Column: dataset spec (`synthscapes`, `digitscenes`, `folder:PATH`).
pub const COL_DATASET: &str = "dataset";
/// Column: the variant compared (e.g. `softmax`, `gmmseg`, `vanilla`, `mahalanobis`).
pub const COL_VARIANT: &str = "variant";
/// Column: a grouping within the study (decoder, anomaly split, `val`); `""` when none.
pub const COL_GROUP: &str = "group";
/// Column: a numeric parameter of the variant (EM loops, M, reliability-bin centre); null when
/// none.
pub const COL_PARAM: &str = "param";
/// Column: seed of the run.
pub const COL_SEED: &str = "seed";
/// Column: metric name (`miou`, `acc`, `macc`, `ece`, `mce`, `nll`, `brier`, `auroc`, `ap`,
/// `fpr95`, `train_s`, `step_ms`, `images_per_s`, `throughput_vs_softmax`, `bin_accuracy`,
/// `bin_confidence`, `bin_count`).
pub const COL_METRIC: &str = "metric";
/// Column: the metric's value.
pub const COL_VALUE: &str = "value";
/// Column: hash of the run's full identity (the cache key).
pub const COL_HASH: &str = "hash";
/// Column: key of the trained model (`models/<key>.json` holds its config and evaluations).
pub const COL_MODEL: &str = "model";
/// Column: [`code_fingerprint`](super::code_fingerprint) of the code that produced the row.
pub const COL_CODE: &str = "code";
/// Summary column: number of seeds.
pub const COL_N: &str = "n";
/// Summary column: mean over seeds.
pub const COL_MEAN: &str = "mean";
/// Summary column: sample standard deviation (null for one seed).
pub const COL_STD: &str = "std";
/// Summary column: half-width of the 95% Student-t CI of the mean (null for one seed).
pub const COL_CI95: &str = "ci95";
/// Summary column: lower end of the CI (the mean for one seed).
pub const COL_LOWER: &str = "lower";
/// Summary column: upper end of the CI (the mean for one seed).
pub const COL_UPPER: &str = "upper";
/// Summary column: the claim stated on a comparison row (null on plain rows).
pub const COL_CLAIM: &str = "claim";
/// Summary column: on a claim row, how many paired seeds are on the claim's side (null on
/// plain rows).
pub const COL_AGREE: &str = "agree";
/// Summary column: on a claim row, `reproduced`, `contradicted` or `inconclusive` (null on
/// plain rows and on a claim whose variants were not run).
pub const COL_VERDICT: &str = "verdict";
