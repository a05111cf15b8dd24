//! Outputs that are either complete or absent: every file the tool writes goes to a
//! temporary file beside its destination and is renamed over it only once fully written,
//! so that a failure (a full disk, a bad path, a crash) never leaves a half-written file or
//! replaces a good one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{GmmSegError, Result};

/// The temporary sibling of `path` that [`write_atomically`] writes first.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// A file written to a temporary path, put in place by [`Staged::commit`] (dropping it
/// uncommitted removes the temporary file).
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
    /// Written straight into an existing special file (a device or pipe such as
    /// `/dev/stdout`), which cannot be replaced by a rename.
    direct: bool,
}

impl Staged {
    /// Writes `path`'s future content to its temporary sibling with `write`.
    ///
    /// # Errors
    /// [`GmmSegError::Io`] naming `path` when the temporary file cannot be created, written
    /// or flushed; `write`'s own errors.
    pub fn write(
        path: &Path,
        write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
    ) -> Result<Self> {
        let special = std::fs::metadata(path)
            .map(|m| !m.file_type().is_file() && !m.is_dir())
            .unwrap_or(false);
        if special {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| GmmSegError::io(path, e))?;
            let mut w = BufWriter::new(file);
            write(&mut w)?;
            w.flush().map_err(|e| GmmSegError::io(path, e))?;
            return Ok(Staged {
                tmp: path.to_path_buf(),
                dest: path.to_path_buf(),
                committed: false,
                direct: true,
            });
        }
        let tmp = temporary_path(path);
        let staged = Staged {
            tmp: tmp.clone(),
            dest: path.to_path_buf(),
            committed: false,
            direct: false,
        };
        let file = File::create(&tmp).map_err(|e| GmmSegError::io(path, e))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush().map_err(|e| GmmSegError::io(path, e))?;
        w.get_ref()
            .sync_all()
            .map_err(|e| GmmSegError::io(path, e))?;
        Ok(staged)
    }

    /// Renames the temporary file over the destination.
    ///
    /// # Errors
    /// [`GmmSegError::Io`] naming the destination.
    pub fn commit(mut self) -> Result<()> {
        if !self.direct {
            std::fs::rename(&self.tmp, &self.dest).map_err(|e| GmmSegError::io(&self.dest, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed && !self.direct {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path` through a temporary file and a rename ([`Staged`]).
///
/// # Errors
/// As [`Staged::write`] and [`Staged::commit`].
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    Staged::write(path, write)?.commit()
}

/// Refuses two outputs that name the same file (`flag`, path pairs; absent outputs skipped):
/// one would silently replace the other.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] naming the second flag.
pub fn distinct_outputs(outputs: &[(&str, Option<&Path>)]) -> Result<()> {
    let resolved: Vec<(&str, PathBuf)> = outputs
        .iter()
        .filter_map(|(flag, p)| p.map(|p| (*flag, resolve(p))))
        .collect();
    for (i, (flag, p)) in resolved.iter().enumerate() {
        if let Some((first, _)) = resolved[..i].iter().find(|(_, q)| q == p) {
            return Err(GmmSegError::input(
                *flag,
                format!(
                    "names the same file as {first} ({}); give each output its own path",
                    p.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `path` with its parent made absolute and canonical where it exists, so that `a/x.npz`
/// and `./a/../a/x.npz` compare equal.
fn resolve(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = parent
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    dir.join(path.file_name().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keep.txt");
        std::fs::write(&p, "good").unwrap();
        let err = write_atomically(&p, |_| Err(GmmSegError::input("x", "failed midway")));
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "good");
        assert!(!temporary_path(&p).exists());
        write_atomically(&p, |w| {
            w.write_all(b"new").map_err(|e| GmmSegError::io("w", e))
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    }

    #[test]
    fn the_same_output_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("x.npz");
        let b = dir.path().join("sub/../x.npz");
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let e =
            distinct_outputs(&[("--out", Some(&a)), ("--responsibilities", Some(&b))]).unwrap_err();
        assert!(e.to_string().contains("--responsibilities"), "{e}");
        distinct_outputs(&[("--out", Some(&a)), ("--responsibilities", None)]).unwrap();
    }
}

/// A folder being written in a sibling staging folder (`<dir>.partial-<pid>`) and moved into
/// place only by [`commit`](Self::commit): a failure part-way leaves the target as it was
/// (the staging folder is removed when the value is dropped uncommitted).
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Prepares to write folder `target`. An existing non-empty `target` is refused unless
    /// `replace` (then it is replaced as a whole on commit, never merged).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `flag` for a non-empty target without `replace`;
    /// I/O errors naming the path.
    pub fn new(target: &Path, replace: bool, flag: &str) -> Result<Self> {
        if target.exists() {
            if !target.is_dir() {
                return Err(GmmSegError::input(
                    target.display().to_string(),
                    "exists and is not a folder",
                ));
            }
            let non_empty = std::fs::read_dir(target)
                .map_err(|e| GmmSegError::io(target, e))?
                .next()
                .is_some();
            if non_empty && !replace {
                return Err(GmmSegError::input(
                    target.display().to_string(),
                    format!("is a non-empty folder; pass {flag} to replace it (its contents are removed), or choose another"),
                ));
            }
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let staging = target.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| GmmSegError::io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| GmmSegError::io(&staging, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            staging,
            committed: false,
        })
    }

    /// Where to write the folder's contents.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Moves the written folder into place (replacing the old target when allowed).
    ///
    /// # Errors
    /// I/O errors naming the path.
    pub fn commit(mut self) -> Result<()> {
        if self.target.exists() {
            let old = self.staging.with_extension("old");
            std::fs::rename(&self.target, &old).map_err(|e| GmmSegError::io(&self.target, e))?;
            if let Err(e) = std::fs::rename(&self.staging, &self.target) {
                let _ = std::fs::rename(&old, &self.target);
                return Err(GmmSegError::io(&self.target, e));
            }
            std::fs::remove_dir_all(&old).map_err(|e| GmmSegError::io(&old, e))?;
        } else {
            std::fs::rename(&self.staging, &self.target)
                .map_err(|e| GmmSegError::io(&self.target, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// An `.npz` archive built in memory by `add` and written to `w` in one piece: a failing
/// disk (`/dev/full`) then gives one I/O error naming `path`, instead of the zip writer's
/// own complaint printed from its destructor.
///
/// # Errors
/// [`GmmSegError::File`] when an array cannot be added; [`GmmSegError::Io`] naming `path`
/// when `w` fails.
pub fn write_npz(
    w: &mut impl Write,
    path: &Path,
    add: impl FnOnce(
        &mut ndarray_npy::NpzWriter<std::io::Cursor<Vec<u8>>>,
    ) -> std::result::Result<(), ndarray_npy::WriteNpzError>,
) -> Result<()> {
    let err =
        |e: ndarray_npy::WriteNpzError| GmmSegError::file(path, format!("cannot write .npz: {e}"));
    let mut npz = ndarray_npy::NpzWriter::new(std::io::Cursor::new(Vec::new()));
    add(&mut npz).map_err(err)?;
    let bytes = npz.finish().map_err(err)?.into_inner();
    w.write_all(&bytes).map_err(|e| GmmSegError::io(path, e))
}
