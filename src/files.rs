//! Files and folders written atomically: the content goes to a temporary
//! file or a staging folder beside the target, is flushed, and is renamed
//! into place, so a failure or a kill never leaves a half-written target.
//! Model saves, adapters, checkpoints, run logs and charts all write here.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// The folder a path's file goes in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Flushes a written file to disk.
pub fn fsync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("cannot flush {}", path.display()))
}

/// Flushes a folder's entries (a rename) where the system allows it.
fn fsync_dir(path: &Path) {
    // Directories cannot be fsynced everywhere; a rename is still atomic.
    let _ = std::fs::File::open(path).and_then(|f| f.sync_all());
}

/// A file-system failure in plain words ("permission denied", "the disk
/// is full"), from the first I/O error in `e`'s causes; else its message.
pub fn plain_reason(e: &anyhow::Error) -> String {
    use std::io::ErrorKind::*;
    let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) else {
        return e.root_cause().to_string();
    };
    match io.kind() {
        PermissionDenied => "permission denied".into(),
        ReadOnlyFilesystem => "the file system is read-only".into(),
        StorageFull => "the disk is full".into(),
        QuotaExceeded => "the disk quota is exceeded".into(),
        FileTooLarge => "the file is too large for the file system".into(),
        NotADirectory | AlreadyExists => "a file is in the way of a folder on that path".into(),
        // The OS's words without "(os error N)".
        _ => {
            let text = io.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_string()
        }
    }
}

/// Files get read-write for everyone and folders also search, less the
/// umask (0644 and 0755 under the usual 022), as `std::fs::write` gives;
/// temporary files would otherwise keep their private 0600.
#[cfg(unix)]
fn usual_permissions(folder: bool) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(if folder { 0o777 } else { 0o666 })
}

/// A builder for temporary files and folders with the usual permissions.
fn builder<'a, 'b>(folder: bool) -> tempfile::Builder<'a, 'b> {
    let mut b = tempfile::Builder::new();
    #[cfg(unix)]
    b.permissions(usual_permissions(folder));
    #[cfg(not(unix))]
    let _ = folder;
    b
}

/// Writes `bytes` to `path` through a temporary file beside it and a
/// rename, creating the folder if needed. A file that is replaced keeps its
/// permissions (a private file, such as a connection file with its key,
/// stays private).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut b = builder(false);
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        b.permissions(meta.permissions());
    }
    let mut tmp = b.tempfile_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes).and_then(|_| tmp.as_file().sync_all()).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path).map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    fsync_dir(dir);
    Ok(())
}

/// Writes the folder `dir` through `fill`, which fills a staging folder
/// (named `staging_prefix` and a random tail) beside it; the staging folder
/// then replaces `dir`, whose old contents stay until the new folder is
/// complete.
pub fn write_folder(dir: &Path, staging_prefix: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = builder(true).prefix(staging_prefix).tempdir_in(parent).with_context(|| format!("cannot write in {}", parent.display()))?;
    fill(staging.path())?;
    replace_dir(staging, dir)?;
    fsync_dir(parent);
    Ok(())
}

/// Moves a finished staging folder to `dest`, replacing what was there only
/// once the new folder is complete.
fn replace_dir(staging: tempfile::TempDir, dest: &Path) -> Result<()> {
    let staged = staging.keep();
    if dest.exists() {
        let old = dest.with_extension(format!("old-{}", std::process::id()));
        std::fs::rename(dest, &old).with_context(|| format!("cannot move the old {} aside", dest.display()))?;
        std::fs::rename(&staged, dest).with_context(|| format!("cannot move the new folder to {}", dest.display()))?;
        std::fs::remove_dir_all(&old).ok();
    } else {
        std::fs::rename(&staged, dest).with_context(|| format!("cannot move the new folder to {}", dest.display()))?;
    }
    Ok(())
}

/// A fault-injection point for tests: when the environment variable
/// `TUNEBOOK_TEST_PAUSE_AT` names `point`, writes an empty `marker` file and
/// waits to be killed, so that a test can kill a write at an exact place
/// rather than at a lucky moment. Without the variable it does nothing.
pub fn pause_point(point: &str, marker: &Path) {
    if std::env::var_os("TUNEBOOK_TEST_PAUSE_AT").is_some_and(|v| v == point) {
        let _ = std::fs::write(marker, b"");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
