//! The crate's one entry into the `gemm` crate: a bounds-checked product of dense matrices
//! stored row- or column-major, so that the convolution, both likelihood ops and the
//! benchmarks share one `unsafe` block whose safety argument is written once.
//!
//! An operand is a slice plus its logical shape and storage order ([`MatRef`], [`MatMut`]);
//! a transposed operand is the same buffer read in the other order, so no product needs a
//! copy to change layout.

pub use gemm::Parallelism;

/// Rows below which a row pass runs on one thread: waking the pool for a few thousand rows
/// costs more than it saves (measured: the thread hand-offs were most of a 2,048-pixel
/// inference).
pub const PAR_MIN_ROWS: usize = 4_096;

/// Multiply–adds below which a product runs on one thread, for the same reason.
pub const PAR_MIN_MACS: usize = 1 << 24;

/// The `gemm` crate's parallelism for an (m × k) · (k × n) product: one thread below
/// [`PAR_MIN_MACS`], the whole pool above.
pub fn parallelism_for(m: usize, k: usize, n: usize) -> Parallelism {
    if m.saturating_mul(k).saturating_mul(n) < PAR_MIN_MACS {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// How a dense matrix is laid out in its slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Element (i, j) at `i·cols + j`.
    RowMajor,
    /// Element (i, j) at `j·rows + i`: the transpose of a row-major (cols × rows) buffer.
    ColMajor,
}

impl Order {
    /// (column stride, row stride) of a dense (rows × cols) matrix in this order.
    fn strides(self, rows: usize, cols: usize) -> (isize, isize) {
        match self {
            Order::RowMajor => (1, cols as isize),
            Order::ColMajor => (rows as isize, 1),
        }
    }
}

/// A read-only dense (rows × cols) matrix over a slice.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    order: Order,
}

impl<'a> MatRef<'a> {
    /// `data` read as a (rows × cols) matrix in `order`.
    ///
    /// # Panics
    /// If `data` holds fewer than rows·cols values (an internal invariant of the callers).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, order: Order) -> Self {
        assert!(
            data.len() >= rows * cols,
            "matrix operand: {} values for {rows}×{cols}",
            data.len()
        );
        MatRef {
            data,
            rows,
            cols,
            order,
        }
    }

    /// `data` as a row-major (rows × cols) matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, Order::RowMajor)
    }

    /// The transpose of the row-major (cols × rows) matrix in `data`, as (rows × cols).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, Order::ColMajor)
    }
}

/// A writable dense (rows × cols) matrix over a slice.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    order: Order,
}

impl<'a> MatMut<'a> {
    /// `data` as a writable (rows × cols) matrix in `order`.
    ///
    /// # Panics
    /// If `data` holds fewer than rows·cols values.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, order: Order) -> Self {
        assert!(
            data.len() >= rows * cols,
            "matrix result: {} values for {rows}×{cols}",
            data.len()
        );
        MatMut {
            data,
            rows,
            cols,
            order,
        }
    }

    /// `data` as a writable row-major (rows × cols) matrix.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, Order::RowMajor)
    }
}

/// `dst = a · b`, or `dst += a · b` when `accumulate`.
///
/// # Panics
/// If the shapes do not chain: `a` is not (dst.rows × k) or `b` not (k × dst.cols).
pub fn matmul(dst: MatMut<'_>, accumulate: bool, a: MatRef<'_>, b: MatRef<'_>, par: Parallelism) {
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    assert!(
        a.rows == m && b.rows == k && b.cols == n,
        "matmul shapes: ({}×{}) = ({}×{}) · ({}×{})",
        m,
        n,
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
    let (d_cs, d_rs) = dst.order.strides(m, n);
    let (a_cs, a_rs) = a.order.strides(m, k);
    let (b_cs, b_rs) = b.order.strides(k, n);
    // SAFETY: each view's constructor checked that its slice holds rows·cols values, and
    // the dense strides of `Order::strides` reach exactly the indices below rows·cols; the
    // assert above makes the three shapes the ones passed to gemm. `dst` is a unique borrow,
    // so it aliases neither operand. With `accumulate == false` gemm ignores dst's values
    // (alpha is zeroed when `read_dst` is false), and it handles m, n or k = 0 itself.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            d_cs,
            d_rs,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by the textbook triple loop, reading each operand through its order.
    fn naive(m: usize, n: usize, k: usize, a: &MatRef<'_>, b: &MatRef<'_>) -> Vec<f32> {
        let at = |x: &MatRef<'_>, i: usize, j: usize| match x.order {
            Order::RowMajor => x.data[i * x.cols + j],
            Order::ColMajor => x.data[j * x.rows + i],
        };
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| at(a, i, l) * at(b, l, j)).sum();
            }
        }
        out
    }

    #[test]
    fn every_storage_order_gives_the_textbook_product() {
        let (m, n, k) = (5, 3, 4);
        let av: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 3.0).collect();
        let bv: Vec<f32> = (0..k * n).map(|v| 1.0 - v as f32 * 0.25).collect();
        for a_order in [Order::RowMajor, Order::ColMajor] {
            for b_order in [Order::RowMajor, Order::ColMajor] {
                for d_order in [Order::RowMajor, Order::ColMajor] {
                    let a = MatRef::new(&av, m, k, a_order);
                    let b = MatRef::new(&bv, k, n, b_order);
                    let want = naive(m, n, k, &a, &b);
                    let mut dst = vec![1f32; m * n];
                    matmul(
                        MatMut::new(&mut dst, m, n, d_order),
                        true,
                        a,
                        b,
                        Parallelism::None,
                    );
                    for i in 0..m {
                        for j in 0..n {
                            let got = match d_order {
                                Order::RowMajor => dst[i * n + j],
                                Order::ColMajor => dst[j * m + i],
                            };
                            assert_eq!(got, want[i * n + j] + 1.0, "{a_order:?} {b_order:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn overwrite_ignores_the_old_values_and_empty_inner_dimension_gives_zeros() {
        let mut dst = vec![f32::NAN; 4];
        let a = MatRef::row_major(&[], 2, 0);
        let b = MatRef::row_major(&[], 0, 2);
        matmul(
            MatMut::row_major(&mut dst, 2, 2),
            false,
            a,
            b,
            Parallelism::None,
        );
        assert_eq!(dst, vec![0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "matmul shapes")]
    fn shapes_that_do_not_chain_panic_before_gemm() {
        let mut dst = vec![0f32; 4];
        let a = MatRef::row_major(&[1.0; 6], 2, 3);
        let b = MatRef::row_major(&[1.0; 4], 2, 2);
        matmul(
            MatMut::row_major(&mut dst, 2, 2),
            false,
            a,
            b,
            Parallelism::None,
        );
    }

    #[test]
    #[should_panic(expected = "matrix operand")]
    fn a_short_slice_is_refused() {
        let _ = MatRef::row_major(&[1.0; 5], 2, 3);
    }
}
