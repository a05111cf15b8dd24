//! Reader of the IDX format (the format of the original MNIST files), optionally
//! gzip-compressed.
//!
//! Layout: a big-endian magic `00 00 TT NDIM` (`TT` = 0x08: unsigned bytes, the only type
//! used here), NDIM big-endian u32 sizes, then the values row-major. Every failure —
//! bad gzip stream, wrong magic, truncated or over-long data — is a
//! [`GmmSegError::File`] naming the file; nothing panics on bad input.

use std::io::Read;
use std::path::Path;

use crate::error::{GmmSegError, Result};

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension (e.g. `[N, 28, 28]` for images, `[N]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major, `dims.iter().product()` of them.
    pub data: Vec<u8>,
}

/// Largest number of values accepted (guards against absurd headers allocating gigabytes).
const MAX_VALUES: usize = 1 << 31;

/// Reads an IDX file; gzip-compressed if its name ends in `.gz`.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = std::fs::read(path).map_err(|e| GmmSegError::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                GmmSegError::file(
                    path,
                    format!("not a valid gzip stream (corrupt or truncated): {e}"),
                )
            })?;
        out
    } else {
        raw
    };
    parse_idx(&bytes, path)
}

/// Parses IDX bytes (already decompressed); `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(GmmSegError::file(
            path,
            format!(
                "truncated IDX header: {} bytes, need at least 4",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(GmmSegError::file(
            path,
            format!(
                "not an IDX file: magic starts {:02x} {:02x}, expected 00 00",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(GmmSegError::file(
            path,
            format!(
                "unsupported IDX value type 0x{:02x}; only 0x08 (unsigned byte) is supported",
                bytes[2]
            ),
        ));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(GmmSegError::file(path, "IDX file declares 0 dimensions"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(GmmSegError::file(
            path,
            format!(
                "truncated IDX header: {} bytes, need {header} for {ndim} dimensions",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&c| c <= MAX_VALUES)
        .ok_or_else(|| GmmSegError::file(path, format!("IDX sizes {dims:?} are absurdly large")))?;
    let body = &bytes[header..];
    if body.len() < count {
        return Err(GmmSegError::file(
            path,
            format!(
                "truncated IDX data: sizes {dims:?} need {count} bytes, found {}",
                body.len()
            ),
        ));
    }
    if body.len() > count {
        return Err(GmmSegError::file(
            path,
            format!(
                "IDX data has {} bytes after the {count} that sizes {dims:?} describe",
                body.len() - count
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Reads an image file (N, rows, cols) and checks its rank.
pub fn read_images(path: &Path) -> Result<IdxArray> {
    let a = read_idx(path)?;
    if a.dims.len() != 3 {
        return Err(GmmSegError::file(
            path,
            format!(
                "expected 3 dimensions (N, rows, cols) for images, got {:?}",
                a.dims
            ),
        ));
    }
    Ok(a)
}

/// Reads a label file (N) and checks its rank.
pub fn read_labels(path: &Path) -> Result<IdxArray> {
    let a = read_idx(path)?;
    if a.dims.len() != 1 {
        return Err(GmmSegError::file(
            path,
            format!("expected 1 dimension (N) for labels, got {:?}", a.dims),
        ));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_a_small_array() {
        let a = parse_idx(&encode(&[2, 3], &[1, 2, 3, 4, 5, 6]), Path::new("x")).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn bad_inputs_are_typed_errors_naming_the_file() {
        let p = Path::new("digits.idx");
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 0, 8, 1],
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
            vec![0, 0, 8, 3, 0, 0],
            encode(&[2, 3], &[1, 2, 3]),
            encode(&[2], &[1, 2, 3]),
            encode(&[u32::MAX, u32::MAX, u32::MAX], &[]),
            vec![0, 0, 8, 0],
        ];
        for bytes in cases {
            match parse_idx(&bytes, p) {
                Err(e @ GmmSegError::File { .. }) => assert!(e.to_string().contains("digits.idx")),
                other => panic!("expected a File error for {bytes:?}, got {other:?}"),
            }
        }
    }
}
