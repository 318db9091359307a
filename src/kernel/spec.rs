//! The kernel spec (`kernel-spec/`) and installing it where Jupyter looks.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const KERNEL_JSON: &str = include_str!("../../kernel-spec/kernel.json");
const LOGO_32: &[u8] = include_bytes!("../../kernel-spec/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../../kernel-spec/logo-64x64.png");

/// The kernel's name in `jupyter kernelspec list`.
pub const KERNEL_NAME: &str = "tunebook";

/// Where to install, as `jupyter kernelspec install` understands it.
#[derive(Debug, Clone)]
pub enum InstallTarget {
    /// The user's Jupyter data folder (`$JUPYTER_DATA_DIR` or `~/.local/share/jupyter`).
    User,
    /// The Python environment of `python3` (a virtualenv when one is active).
    SysPrefix,
    /// `PREFIX/share/jupyter`.
    Prefix(PathBuf),
}

/// The program Jupyter starts: it serves the sockets and starts `tunebook`
/// from its own folder for the cells.
pub const KERNEL_PROGRAM: &str = "tunebook-kernel";

/// The kernel.json text for the kernel program at `exe`.
pub fn kernel_json(exe: &Path) -> String {
    let exe = serde_json::to_string(&exe.display().to_string()).expect("a path serializes");
    KERNEL_JSON.replace("\"{tunebook-kernel}\"", &exe)
}

fn data_dir(target: &InstallTarget) -> Result<PathBuf> {
    Ok(match target {
        InstallTarget::User => match std::env::var_os("JUPYTER_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME").context("HOME is not set; use --prefix DIR")?;
                PathBuf::from(home).join(".local/share/jupyter")
            }
        },
        InstallTarget::SysPrefix => {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.prefix)"])
                .output()
                .context("--sys-prefix asks python3 for its prefix, and python3 could not be run")?;
            if !out.status.success() {
                bail!("python3 could not report sys.prefix");
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/jupyter")
        }
        InstallTarget::Prefix(p) => p.join("share/jupyter"),
    })
}

/// Writes kernel.json (which starts the kernel program at `exe`) and the
/// logos into `<data dir>/kernels/tunebook`; returns that folder.
pub fn install(target: &InstallTarget, exe: &Path) -> Result<PathBuf> {
    if !exe.is_file() {
        bail!("there is no {KERNEL_PROGRAM} at {}; it is built with tunebook (cargo build --release builds both): install the two together", exe.display());
    }
    let dir = data_dir(target)?.join("kernels").join(KERNEL_NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        // Written beside and renamed, so Jupyter never reads half a kernel.json.
        let tmp = dir.join(format!(".{name}.tmp"));
        // At most 0644 (the umask may take more away): readable by Jupyter,
        // never writable by others. A leftover temporary file would keep its mode.
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(name))?;
        Ok(())
    };
    write("kernel.json", kernel_json(exe).as_bytes())?;
    write("logo-32x32.png", LOGO_32)?;
    write("logo-64x64.png", LOGO_64)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_names_the_binary_and_message_interrupts() {
        let v: serde_json::Value = serde_json::from_str(&kernel_json(Path::new("/opt/tb/tunebook-kernel"))).unwrap();
        assert_eq!(v["argv"][0], "/opt/tb/tunebook-kernel");
        assert_eq!(v["argv"][1], "--connection-file");
        assert_eq!(v["argv"][2], "{connection_file}");
        assert_eq!(v["interrupt_mode"], "message");
        assert_eq!(v["language"], "rhai");
        assert_eq!(v["display_name"], "Tunebook (Rhai)");
    }
}
