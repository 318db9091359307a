//! Peak memory of this process, for run reports and benchmarks.

/// Resets the peak resident set size, so that the next `peak_rss_bytes`
/// covers only what follows (Linux; elsewhere a no-op).
pub fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since start or the last reset (Linux's
/// VmHWM), or `None` where it cannot be read.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_readable_and_grows_with_an_allocation() {
        super::reset_peak_rss();
        let before = super::peak_rss_bytes().expect("Linux has VmHWM");
        // Other tests of this binary allocate and free at the same time (a
        // few MiB seen): a large block and a 32 MiB margin keep that out.
        let block = vec![1u8; 256 << 20];
        std::hint::black_box(&block);
        let after = super::peak_rss_bytes().unwrap();
        assert!(after >= before + (224 << 20), "peak {before} -> {after} after touching 256 MiB");
    }
}
