//! `scripts/bootstrap`: checksums, atomic installs and idempotent re-runs,
//! on a local file so that the test needs no registry.

mod common;

use std::path::Path;
use std::process::Command;

fn manifest(dir: &Path, file: &Path, sha: &str) -> std::path::PathBuf {
    let m = serde_json::json!({ "artifacts": { "tiny": {
        "what": "a test file", "group": "data", "dest": "datasets/tiny",
        "downloads": [{ "via": "file", "path": file, "spec": "tiny", "file": "tiny.tgz", "sha256": sha, "extract": ["package/"], "strip": "package/" }]
    }}});
    let path = dir.join("manifest.json");
    std::fs::write(&path, m.to_string()).unwrap();
    path
}

fn bootstrap(cache: &Path, manifest: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg(common::repo().join("scripts/bootstrap"))
        .args(["--only", "tiny"])
        .env("TUNEBOOK_CACHE", cache)
        .env("TUNEBOOK_MANIFEST", manifest)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A gzipped tarball holding `package/hello.txt`, and its sha256.
fn tarball(dir: &Path) -> (std::path::PathBuf, String) {
    let src = dir.join("src/package");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), "hello").unwrap();
    let path = dir.join("tiny.tgz");
    assert!(Command::new("tar").arg("czf").arg(&path).arg("-C").arg(dir.join("src")).arg("package").status().unwrap().success());
    let sha = Command::new("sha256sum").arg(&path).output().unwrap();
    (path, String::from_utf8_lossy(&sha.stdout).split_whitespace().next().unwrap().to_string())
}

#[test]
fn a_wrong_checksum_fails_clearly_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = tarball(dir.path());
    let cache = dir.path().join("cache");
    let m = manifest(dir.path(), &file, &"0".repeat(64));
    let (ok, out) = bootstrap(&cache, &m);
    assert!(!ok, "bootstrap accepted a bad checksum:\n{out}");
    assert!(out.contains("sha256 mismatch for tiny.tgz") && out.contains(&"0".repeat(64)), "{out}");
    assert!(!cache.join("datasets/tiny").exists(), "a failed install left its folder");
    let leftovers: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.is_empty(), "temporary files left in the cache: {leftovers:?}");
}

#[test]
fn a_good_checksum_installs_once_and_a_second_run_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let (file, sha) = tarball(dir.path());
    let cache = dir.path().join("cache");
    let m = manifest(dir.path(), &file, &sha);
    let (ok, out) = bootstrap(&cache, &m);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(cache.join("datasets/tiny/hello.txt")).unwrap(), "hello");
    assert!(out.contains("sha256 ok"), "{out}");
    let (ok, out) = bootstrap(&cache, &m);
    assert!(ok && out.contains("tiny: already installed"), "{out}");
}

#[test]
fn an_unknown_artifact_name_lists_the_valid_ones() {
    let out = Command::new("python3").arg(common::repo().join("scripts/bootstrap")).args(["--only", "imagenet"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown artifact imagenet") && stderr.contains("rotten_tomatoes"), "{stderr}");
}
