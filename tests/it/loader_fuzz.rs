//! Fuzzed loaders: every reader of outside bytes — `.npy`, `.npz` GMM parameters, IDX
//! (MNIST), PNG folder datasets and checkpoints — is fed valid files with random bytes
//! changed, truncated or appended (proptest, a fixed number of cases so CI time is
//! bounded). Each must return a value or a typed error: no panic, no abort, no absurd
//! allocation.

use std::path::Path;

use gmmseg::data::folder::{FolderDataset, LabelMapping};
use gmmseg::data::Dataset;
use gmmseg::gmm::GmmParams;
use gmmseg::io::npy::{read_float_array, read_int_array, read_matrix, write_npy};
use ndarray::{Array1, Array2};
use proptest::prelude::*;

/// How a valid file is damaged.
#[derive(Clone, Debug)]
enum Damage {
    /// Set the byte at (position mod length) to the value.
    Set(usize, u8),
    /// Keep only the first (position mod length) bytes.
    Truncate(usize),
    /// Append bytes.
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    prop::collection::vec(
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Damage::Set(p, v)),
            1 => any::<usize>().prop_map(Damage::Truncate),
            1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
        ],
        1..6,
    )
}

fn apply(mut bytes: Vec<u8>, damage: &[Damage], header_bias: usize) -> Vec<u8> {
    for d in damage {
        if bytes.is_empty() {
            break;
        }
        match d {
            // half of the changes land in the first `header_bias` bytes, where the headers are
            Damage::Set(p, v) => {
                let n = if p % 2 == 0 {
                    header_bias.min(bytes.len())
                } else {
                    bytes.len()
                };
                let i = (p / 2) % n.max(1);
                bytes[i] = *v;
            }
            Damage::Truncate(p) => bytes.truncate(p % bytes.len()),
            Damage::Append(extra) => bytes.extend(extra),
        }
    }
    bytes
}

/// Writes `bytes` to `dir/name` and returns the path.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Valid example files, made once per test.
struct Valid {
    _dir: tempfile::TempDir,
    npy_f32: Vec<u8>,
    npy_i64: Vec<u8>,
    npz: Vec<u8>,
    idx: Vec<u8>,
    png: Vec<u8>,
    label_png: Vec<u8>,
    checkpoint: Vec<u8>,
}

fn valid() -> Valid {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = Array2::from_shape_fn((12, 3), |(i, j)| (i * 3 + j) as f32 * 0.1);
    write_npy(&d.join("x.npy"), &x).unwrap();
    let y = Array1::from_shape_fn(12, |i| (i % 2) as i64);
    write_npy(&d.join("y.npy"), &y).unwrap();
    let p = GmmParams::standard(2, 2, 3);
    p.save_npz(&d.join("p.npz")).unwrap();
    // IDX: unsigned bytes, 2 × 3 × 3
    let mut idx = vec![0u8, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    idx.extend(0..18u8);
    let img = image::RgbImage::from_fn(6, 5, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let lab = image::GrayImage::from_fn(6, 5, |x, _| image::Luma([(x % 2) as u8]));
    let mut label_png = Vec::new();
    image::DynamicImage::ImageLuma8(lab)
        .write_to(
            &mut std::io::Cursor::new(&mut label_png),
            image::ImageFormat::Png,
        )
        .unwrap();
    // a checkpoint of a 1-step toy run
    let out = d.join("run");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args([
            "train",
            "--dataset",
            "toy",
            "--head",
            "gmmseg",
            "--decoder",
            "fcn",
            "--steps",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    Valid {
        npy_f32: std::fs::read(d.join("x.npy")).unwrap(),
        npy_i64: std::fs::read(d.join("y.npy")).unwrap(),
        npz: std::fs::read(d.join("p.npz")).unwrap(),
        idx,
        png,
        label_png,
        checkpoint: std::fs::read(out.join("checkpoint.safetensors")).unwrap(),
        _dir: dir,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_panic(d in damage()) {
        use std::sync::OnceLock;
        static VALID: OnceLock<Valid> = OnceLock::new();
        let v = VALID.get_or_init(valid);
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        // .npy, both readers and dtypes
        let f = put(t, "f.npy", &apply(v.npy_f32.clone(), &d, 128));
        let _ = read_matrix(&f);
        let _ = read_float_array(&f);
        let _ = read_int_array(&f);
        let i = put(t, "i.npy", &apply(v.npy_i64.clone(), &d, 128));
        let _ = read_int_array(&i);
        let _ = read_matrix(&i);
        // .npz parameters
        let z = put(t, "p.npz", &apply(v.npz.clone(), &d, 256));
        if let Ok(p) = GmmParams::load_npz(&z) {
            prop_assert!(p.means.iter().all(|m| m.is_finite()));
        }
        // IDX
        let x = apply(v.idx.clone(), &d, 16);
        let _ = gmmseg::data::idx::parse_idx(&x, Path::new("x.idx"));
        // a folder dataset with a damaged image or label
        for (damaged_image, damaged_label) in [(true, false), (false, true)] {
            let root = t.join(format!("folder-{damaged_image}"));
            std::fs::create_dir_all(root.join("train/images")).unwrap();
            std::fs::create_dir_all(root.join("train/labels")).unwrap();
            std::fs::write(root.join("classes.txt"), "a\nb\n").unwrap();
            let img = if damaged_image { apply(v.png.clone(), &d, 64) } else { v.png.clone() };
            let lab = if damaged_label { apply(v.label_png.clone(), &d, 64) } else { v.label_png.clone() };
            std::fs::write(root.join("train/images/0.png"), img).unwrap();
            std::fs::write(root.join("train/labels/0.png"), lab).unwrap();
            if let Ok(ds) = FolderDataset::open(&root, "train", LabelMapping::Identity) {
                let _ = ds.get(0);
            }
        }
        // checkpoints
        let run = t.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("checkpoint.safetensors"), apply(v.checkpoint.clone(), &d, 512)).unwrap();
        let _ = gmmseg::train::checkpoint::read(&run);
    }
}
