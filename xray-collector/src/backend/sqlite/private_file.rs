//! The store holds captured data, so what X-Ray creates for it is the
//! owner's only (on Unix): new directories `0700`, the file `0600` — and
//! SQLite gives its `-wal` and `-shm` files the mode of the database file.
//! An existing file or directory keeps the mode it has.

use std::io;
use std::path::Path;

/// Creates the missing directories of `path` and the empty file itself,
/// owner-only. A file that exists by then (another collector made it) is
/// left as it is.
pub(super) fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
