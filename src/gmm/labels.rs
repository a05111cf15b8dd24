//! Validated per-pixel labels grouped by class (255 = ignore).

use crate::error::{GmmSegError, Result};

/// The label value that is skipped everywhere.
pub const IGNORE: i64 = 255;

/// Pixel indices of each class, after checking every label is `0..C` or 255.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassIndex {
    /// `per_class[c]`: indices of the pixels labelled c, increasing.
    pub per_class: Vec<Vec<usize>>,
    /// Total number of pixels, ignored ones included.
    pub num_pixels: usize,
}

impl ClassIndex {
    /// Groups `labels` by class; `what` names the source in errors.
    pub fn new(
        labels: impl IntoIterator<Item = i64>,
        num_classes: usize,
        what: &str,
    ) -> Result<Self> {
        let mut per_class = vec![Vec::new(); num_classes];
        let mut n = 0;
        for (i, l) in labels.into_iter().enumerate() {
            n += 1;
            if l == IGNORE {
                continue;
            }
            if l < 0 || l as usize >= num_classes {
                return Err(GmmSegError::LabelOutOfRange {
                    what: what.into(),
                    label: l,
                    index: i,
                    classes: num_classes,
                });
            }
            per_class[l as usize].push(i);
        }
        Ok(Self {
            per_class,
            num_pixels: n,
        })
    }

    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.per_class.len()
    }

    /// Number of non-ignored pixels.
    pub fn num_valid(&self) -> usize {
        self.per_class.iter().map(Vec::len).sum()
    }
}

/// C = 1 + the largest label other than 255; an error if every label is 255 or one is
/// negative or above 255.
pub fn infer_num_classes(labels: &[i64], what: &str) -> Result<usize> {
    let mut max = None;
    for (i, &l) in labels.iter().enumerate() {
        if l == IGNORE {
            continue;
        }
        if !(0..IGNORE).contains(&l) {
            return Err(GmmSegError::input(
                what,
                format!(
                    "label {l} at flat index {i}: labels are class ids 0..=254 (the number of \
                     classes is the largest id + 1) or 255 = ignore"
                ),
            ));
        }
        max = Some(max.map_or(l, |m: i64| m.max(l)));
    }
    match max {
        Some(m) => Ok(m as usize + 1),
        None => Err(GmmSegError::empty(
            what,
            "every label is 255 (ignore): there is nothing to fit",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_validates() {
        let idx = ClassIndex::new([0, 2, 255, 0], 3, "y").unwrap();
        assert_eq!(idx.per_class, vec![vec![0, 3], vec![], vec![1]]);
        assert_eq!(idx.num_valid(), 3);
        let err = ClassIndex::new([0, 3], 3, "y").unwrap_err();
        assert!(err.to_string().contains("label 3"), "{err}");
        assert!(ClassIndex::new([-1], 3, "y").is_err());
        assert_eq!(infer_num_classes(&[4, 255, 1], "y").unwrap(), 5);
        assert!(infer_num_classes(&[255, 255], "y").is_err());
        assert!(infer_num_classes(&[256], "y").is_err());
    }
}
