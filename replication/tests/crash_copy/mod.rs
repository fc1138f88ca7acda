//! A log directory's files as a crashed process leaves them, copied for a test to reopen.

use std::path::Path;

/// Copies the files of the log in `from` into `to`, all but its `lock` file: copying that
/// would open and close a descriptor of it, which ends the lock of the process holding it
/// (this one, when the log is still open).
pub(crate) fn copy_log_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name != "lock" {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}
