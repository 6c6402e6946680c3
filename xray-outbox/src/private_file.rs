//! Files X-Ray creates hold captured data, so they are the owner's only (on
//! Unix): new directories `0700`, new files `0600` — and SQLite gives a
//! database's `-wal` and `-shm` files the mode of the database file, so
//! creating the file before SQLite opens it covers them. An existing file
//! or directory keeps the mode it has (its owner chose it). Used for the
//! outbox (by the SDK) and the embedded store (by the collector).

use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents, each new one owner-only.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the empty file `path`, owner-only, unless it exists (another
/// process may have made it meanwhile: it is left as it is).
pub fn create(path: &Path) -> io::Result<()> {
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
