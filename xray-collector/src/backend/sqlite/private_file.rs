//! The store holds captured data: what X-Ray creates for it is owner-only
//! (see [`xray_outbox::private_file`], shared with the SDK's outbox).

use std::io;
use std::path::Path;

use xray_outbox::private_file;

/// Creates the missing directories of `path` and the empty file itself,
/// owner-only. A file that exists by then (another collector made it) is
/// left as it is.
pub(super) fn create(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_file::create_dir_all(dir)?;
    }
    private_file::create(path)
}
