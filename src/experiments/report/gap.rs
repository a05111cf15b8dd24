//! The `gap` study read as its question asks: for each factor over the tuned GMMSeg, does it
//! help on the tune split (the rule that keeps it), what does it do to val mIoU, and what
//! does it cost the density (likelihood AUROC) and the calibration (ECE)? Built from the
//! study's paired claims ([`crate::experiments::summary`]), so every number here is one
//! of `claims.csv`.

use polars::prelude::{Column, DataFrame};

use super::{escape_html, Html, Table};
use crate::error::{GmmSegError, Result};
use crate::experiments::{Claim, Study, StudyResult, GAP_FACTORS, SOFTMAX_PREFIX};

/// `+0.0123 ± 0.0456` (paired mean difference and its 95% half-width; `n=1` without one).
fn fmt_claim(c: Option<&Claim>) -> String {
    match c.and_then(|c| c.mean_diff.map(|d| (d, c.ci95))) {
        Some((d, Some(h))) => format!("{d:+.4} ± {h:.4}"),
        Some((d, None)) => format!("{d:+.4} (n=1)"),
        None => "—".into(),
    }
}

/// The share of softmax's val-mIoU lead that a factor's gain removes: `gain / lead`, where
/// `gain` is the factor's mean val-mIoU difference from the tuned GMMSeg and `lead` is
/// softmax's mean val mIoU minus the tuned GMMSeg's. `None` when softmax does not lead
/// (there is no gap to close). Both are means over the same seeds, so the ratio is of
/// means; its uncertainty is that of the two paired differences beside it in the table.
fn gap_share(gain: f64, lead: f64) -> Option<f64> {
    (lead > 0.0 && gain.is_finite()).then_some(gain / lead)
}

/// [`gap_share`] as a percentage (`—` when there is no gap or no gain measured).
fn fmt_share(gain: Option<&Claim>, gmmseg_vs_softmax: Option<&Claim>) -> String {
    let mean = |c: Option<&Claim>| c.and_then(|c| c.mean_diff);
    match (mean(gain), mean(gmmseg_vs_softmax)) {
        (Some(g), Some(d)) => gap_share(g, -d)
            .map(|s| format!("{:+.0}%", 100.0 * s))
            .unwrap_or_else(|| "—".into()),
        _ => "—".into(),
    }
}

/// The claim of `result` comparing `variant` with `baseline` on (`group`, `metric`).
fn find<'a>(
    result: &'a StudyResult,
    variant: &str,
    baseline: &str,
    group: &str,
    metric: &str,
) -> Option<&'a Claim> {
    result
        .claims
        .iter()
        .find(|c| c.a.0 == variant && c.b.0 == baseline && c.group == group && c.metric == metric)
}

/// The variants of the study in its order: the tuned GMMSeg, each factor, then softmax and
/// its factor variants — those present in `result`.
fn variants(result: &StudyResult) -> Vec<String> {
    let present = |v: &str| result.cells.iter().any(|c| c.variant == v);
    let mut out: Vec<String> = std::iter::once("gmmseg".to_string())
        .chain(GAP_FACTORS.iter().map(|(n, _)| n.to_string()))
        .filter(|v| present(v))
        .collect();
    for c in &result.cells {
        if c.variant.starts_with(SOFTMAX_PREFIX) && !out.contains(&c.variant) {
            out.push(c.variant.clone());
        }
    }
    out
}

/// One table per dataset: for each variant, the paired differences (mean ± 95% CI over
/// seeds) that decide its claims. "kept on tune" is the study's rule: the mean tune-mIoU
/// difference from the tuned GMMSeg is > 0.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] naming `results` when one of them is not the `gap` study.
pub fn gap_tables(results: &[StudyResult]) -> Result<Html> {
    let mut h = Html::default();
    for r in results {
        if r.study != Study::Gap {
            return Err(GmmSegError::input(
                "results",
                format!("expected the gap study, got {}", r.study),
            ));
        }
        let anomaly = r
            .claims
            .iter()
            .map(|c| c.group.as_str())
            .find(|g| *g == "anomaly")
            .or_else(|| {
                r.claims
                    .iter()
                    .map(|c| c.group.as_str())
                    .find(|g| g.starts_with("anomaly"))
            });
        let names = variants(r);
        let gmmseg_vs_softmax = find(r, "gmmseg", "softmax", "val", "miou");
        let mut cols: Vec<Vec<String>> = vec![Vec::new(); 7];
        for v in &names {
            let softmax_side = v.starts_with("softmax");
            let tune = find(r, v, "gmmseg", "tune", "miou");
            let kept = match tune.and_then(|c| c.mean_diff) {
                _ if v == "gmmseg" || softmax_side => "—".to_string(),
                Some(d) if d > 0.0 => "yes".into(),
                Some(_) => "no".into(),
                None => "not run".into(),
            };
            let vs_base = if softmax_side {
                find(r, v, "softmax", "val", "miou")
            } else {
                find(r, v, "gmmseg", "val", "miou")
            };
            let row = [
                fmt_claim(tune),
                kept,
                fmt_claim(vs_base),
                fmt_claim(
                    (!softmax_side)
                        .then(|| find(r, v, "softmax", "val", "miou"))
                        .flatten(),
                ),
                if softmax_side || v == "gmmseg" {
                    "—".to_string()
                } else {
                    fmt_share(vs_base, gmmseg_vs_softmax)
                },
                fmt_claim(
                    anomaly
                        .filter(|_| !softmax_side)
                        .and_then(|g| find(r, v, "softmax", g, "auroc")),
                ),
                fmt_claim(
                    (!softmax_side)
                        .then(|| find(r, v, "softmax", "val", "ece"))
                        .flatten(),
                ),
            ];
            for (c, x) in cols.iter_mut().zip(row) {
                c.push(x);
            }
        }
        let auroc = format!(
            "{} likelihood AUROC − softmax MSP AUROC",
            anomaly.unwrap_or("anomaly")
        );
        let headers = [
            "Δ tune mIoU vs GMMSeg",
            "kept on tune",
            "Δ val mIoU vs its base",
            "val mIoU − softmax",
            "share of the gap closed",
            auroc.as_str(),
            "ECE − softmax",
        ];
        let mut columns = vec![Column::new("variant".into(), names.clone())];
        columns.extend(
            headers
                .iter()
                .zip(cols)
                .map(|(name, c)| Column::new((*name).into(), c)),
        );
        let frame = DataFrame::new(names.len(), columns)
            .map_err(|e| GmmSegError::input("gap table", e.to_string()))?;
        h.push(
            &Table {
                title: format!(
                    "The segmentation gap on {}, one factor at a time: paired differences, mean \
                     ± 95% CI over seeds (base: the tuned GMMSeg; softmax rows: the softmax \
                     baseline)",
                    r.dataset()
                ),
                frame,
            }
            .to_html(),
        );
    }
    h.push(&format!(
        "<p>{}</p>",
        escape_html(
            "A factor is kept when it raises the mean tune mIoU over the tuned GMMSeg; val \
             and the anomaly split only report. AUROC and ECE differences are against the \
             softmax baseline: a positive AUROC difference and a negative ECE difference are \
             what the paper claims. The share of the gap closed is a factor's mean val-mIoU \
             gain over the tuned GMMSeg divided by softmax's mean val-mIoU lead over it: 100% \
             brings GMMSeg level with softmax, a negative share widens the gap."
        )
    ));
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_the_gain_over_softmax_lead() {
        // GMMSeg 0.70, softmax 0.72, a factor at 0.71: half the gap
        assert!((gap_share(0.01, 0.02).unwrap() - 0.5).abs() < 1e-12);
        assert!((gap_share(-0.01, 0.02).unwrap() + 0.5).abs() < 1e-12);
        assert_eq!(gap_share(0.01, 0.0), None);
        assert_eq!(gap_share(0.01, -0.01), None);
        assert_eq!(gap_share(f64::NAN, 0.02), None);
    }
}
