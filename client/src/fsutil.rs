//! Private files on disk: folders made 0700, files created 0600.

use crate::error::{Error, Result};
use std::fs;
use std::path::Path;

/// Creates `dir` (and parents) if needed and makes `dir` itself 0700.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::store(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| Error::store(dir, e))?;
    }
    Ok(())
}

/// Creates `dir` and any missing parent with mode 0700, and changes nothing that exists: a
/// folder the user named (their home, say) keeps its permissions.
pub(crate) fn create_missing_dirs(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::store(dir, e))
}

/// Opens (creating if needed) a file readable and writable by the owner only.
pub(crate) fn open_private(path: &Path) -> Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| Error::store(path, e))
}

/// Reads a file, `None` if it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::store(path, e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("exists").permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_and_dirs_0700() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("a").join("b");
        ensure_private_dir(&dir).expect("creates");
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("state");
        drop(open_private(&file).expect("creates"));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(read_optional(&file).expect("reads"), Some(Vec::new()));
        assert_eq!(read_optional(&dir.join("missing")).expect("ok"), None);
    }

    #[test]
    fn loose_existing_dir_is_tightened() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("loose");
        fs::create_dir(&dir).expect("creates");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&dir).expect("tightens");
        assert_eq!(mode(&dir), 0o700);
    }
}
