//! Reading NumPy arrays with the dtype conversions users expect, and writing results.
//!
//! `ndarray-npy` reads one exact element type; here we read the file once into memory and try
//! the accepted element types in turn, so that a float64 feature file or an int64 label file
//! loads as-is. Every error names the file.

use std::io::Cursor;
use std::path::Path;

use ndarray::{Array, Array1, Array2, ArrayD, Dimension, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WritableElement, WriteNpyExt};

use crate::error::{GmmSegError, Result};

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| GmmSegError::io(path, e))?;
    if bytes.is_empty() {
        return Err(GmmSegError::file(
            path,
            "the file is empty (expected a NumPy .npy array)",
        ));
    }
    check_header_against_size(&bytes).map_err(|msg| GmmSegError::file(path, msg))?;
    Ok(bytes)
}

/// Compares the array size an `.npy` header claims with the bytes the file holds, before
/// anything is allocated from the header: a header claiming shape (99999999999, 4) over a
/// 9.6 KB file must be an error, not a 1.6 TB allocation that aborts the process. Headers
/// this cannot read are left to the parser, whose errors are reported as they are.
pub fn check_header_against_size(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Ok(());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Ok(()),
    };
    let Some(header) = bytes
        .get(start..start.saturating_add(len))
        .and_then(|h| std::str::from_utf8(h).ok())
    else {
        return Err("truncated NumPy header".into());
    };
    let field = |key: &str| header.find(key).map(|i| &header[i + key.len()..]);
    let Some(itemsize) = field("'descr':").and_then(|rest| {
        let quoted = rest.split(['\'', '"']).nth(1)?;
        quoted
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<u64>()
            .ok()
    }) else {
        return Ok(());
    };
    let Some(dims) = field("'shape':").and_then(|rest| {
        let open = rest.find('(')?;
        let close = rest.find(')')?;
        rest.get(open + 1..close)
    }) else {
        return Ok(());
    };
    let mut elements: u64 = 1;
    let mut shape = Vec::new();
    for d in dims.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let n: u64 = d
            .trim_end_matches('L')
            .parse()
            .map_err(|_| format!("unreadable shape `({dims})` in the NumPy header"))?;
        shape.push(n);
        elements = elements
            .checked_mul(n)
            .ok_or_else(|| format!("the header's shape ({dims}) overflows the element count"))?;
    }
    let needed = elements
        .checked_mul(itemsize)
        .ok_or_else(|| format!("the header's shape ({dims}) overflows the byte count"))?;
    let available = (bytes.len() - (start + len).min(bytes.len())) as u64;
    if needed > available {
        return Err(format!(
            "the header claims shape {shape:?} of {itemsize}-byte elements ({needed} bytes of data) but the file holds {available}: truncated file or corrupt header"
        ));
    }
    Ok(())
}

/// Outcome of trying to parse `bytes` as an array of element type `A`.
enum Attempt<T> {
    Ok(T),
    WrongType,
    Fatal(String),
}

fn attempt<A: ReadableElement>(bytes: &[u8]) -> Attempt<ArrayD<A>> {
    match ArrayD::<A>::read_npy(Cursor::new(bytes)) {
        Ok(a) => Attempt::Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => Attempt::WrongType,
        Err(e) => Attempt::Fatal(describe(e)),
    }
}

fn describe(e: ReadNpyError) -> String {
    match e {
        ReadNpyError::Io(e) => format!("truncated or unreadable NumPy data ({e})"),
        ReadNpyError::ParseHeader(e) => format!("not a valid NumPy .npy file ({e})"),
        ReadNpyError::ParseData(e) => format!("corrupt array data ({e})"),
        ReadNpyError::LengthOverflow => "array length overflows usize".into(),
        ReadNpyError::MissingData => "truncated file: fewer elements than the header says".into(),
        ReadNpyError::ExtraBytes(n) => format!("{n} unexpected bytes after the array data"),
        other => other.to_string(),
    }
}

macro_rules! try_types {
    ($bytes:expr, $path:expr, $conv:expr, $($t:ty),+) => {{
        $(
            match attempt::<$t>($bytes) {
                Attempt::Ok(a) => return Ok(a.mapv($conv)),
                Attempt::Fatal(msg) => return Err(GmmSegError::file($path, msg)),
                Attempt::WrongType => {}
            }
        )+
    }};
}

/// Reads any float array (float32 or float64) as `f32`, with any number of dimensions.
pub fn read_float_array(path: &Path) -> Result<ArrayD<f32>> {
    let bytes = read_bytes(path)?;
    try_types!(&bytes, path, |v| v, f32);
    try_types!(&bytes, path, |v: f64| v as f32, f64);
    Err(GmmSegError::file(
        path,
        "unsupported dtype: expected float32 or float64 (little- or big-endian)",
    ))
}

/// Reads any integer array (int8..int64, uint8..uint64, bool) as `i64`.
pub fn read_int_array(path: &Path) -> Result<ArrayD<i64>> {
    let bytes = read_bytes(path)?;
    try_types!(&bytes, path, |v: u8| v as i64, u8);
    try_types!(&bytes, path, |v: i8| v as i64, i8);
    try_types!(&bytes, path, |v: u16| v as i64, u16);
    try_types!(&bytes, path, |v: i16| v as i64, i16);
    try_types!(&bytes, path, |v: u32| v as i64, u32);
    try_types!(&bytes, path, |v: i32| v as i64, i32);
    try_types!(&bytes, path, |v: i64| v, i64);
    try_types!(&bytes, path, |v: u64| v.min(i64::MAX as u64) as i64, u64);
    try_types!(&bytes, path, |v: bool| v as i64, bool);
    Err(GmmSegError::file(
        path,
        "unsupported dtype: expected an integer array (int8..int64, uint8..uint64 or bool)",
    ))
}

fn into_dim<A, D: Dimension>(a: ArrayD<A>, path: &Path, expected: &str) -> Result<Array<A, D>> {
    let shape = a.shape().to_vec();
    a.into_dimensionality::<D>().map_err(|_| {
        GmmSegError::file(
            path,
            format!("expected a {expected} array, found shape {shape:?}"),
        )
    })
}

/// Reads a 2-D float array (N, D), e.g. per-pixel features, as `f32`.
pub fn read_matrix(path: &Path) -> Result<Array2<f32>> {
    into_dim(read_float_array(path)?, path, "2-D (N, D) float")
}

/// Reads a 1-D integer array (N,), e.g. labels, as `i64`.
pub fn read_labels(path: &Path) -> Result<Array1<i64>> {
    into_dim(read_int_array(path)?, path, "1-D (N,) integer")
}

/// Reads an integer array of any shape and flattens it (label maps of shape (B, H, W) etc.).
pub fn read_labels_flat(path: &Path) -> Result<Array1<i64>> {
    let a = read_int_array(path)?;
    let n = a.len();
    Ok(a.into_shape_with_order(IxDyn(&[n]))
        .map_err(|e| GmmSegError::file(path, e.to_string()))?
        .into_dimensionality()
        .expect("1-D by construction"))
}

/// Reads a float array of any shape and flattens it (score maps of shape (B, H, W) etc.).
pub fn read_floats_flat(path: &Path) -> Result<Array1<f32>> {
    let a = read_float_array(path)?;
    let n = a.len();
    Ok(Array1::from_shape_vec(n, a.into_iter().collect()).expect("length matches"))
}

/// Writes an array as `.npy` through a temporary file and a rename (a failure leaves any
/// existing file untouched), naming the file on failure.
pub fn write_npy<A: WritableElement, D: Dimension>(path: &Path, a: &Array<A, D>) -> Result<()> {
    stage_npy(path, a)?.commit()
}

/// [`write_npy`]'s first half: the array written to its temporary file, put in place by
/// [`Staged::commit`](super::atomic::Staged::commit) — so that several outputs can be
/// committed only once all of them were written.
pub fn stage_npy<A: WritableElement, D: Dimension>(
    path: &Path,
    a: &Array<A, D>,
) -> Result<super::atomic::Staged> {
    super::atomic::Staged::write(path, |w| {
        a.write_npy(w)
            .map_err(|e| GmmSegError::file(path, format!("cannot write NumPy array: {e}")))
    })
}
