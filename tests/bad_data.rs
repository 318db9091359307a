//! The bad-data corpus (tests/corpus/bad-data, written by
//! scripts/make_bad_data_corpus.py): every broken input gives the error
//! cases.json names, at the script line that loaded it, without a panic,
//! and no file of the user's is changed or added.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn corpus() -> PathBuf {
    common::repo().join("tests/corpus/bad-data")
}

/// Every file under `dir` with the sha256 of its content.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), hex::encode(Sha256::digest(std::fs::read(&path).unwrap())));
            }
        }
    }
    files
}

#[test]
fn every_broken_input_gives_its_error_and_changes_nothing() {
    let expected: BTreeMap<String, String> = serde_json::from_str(&std::fs::read_to_string(corpus().join("cases.json")).unwrap()).unwrap();
    let mut cases: Vec<String> = std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap()).filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    cases.sort();
    assert_eq!(cases, expected.keys().cloned().collect::<Vec<_>>(), "every case folder needs an entry in cases.json, and every entry a folder");

    let before = snapshot(&corpus());
    let mut failures = Vec::new();
    for case in &cases {
        let dir = corpus().join(case);
        let out = Command::new(common::tunebook_bin())
            .args(["run", "case.rhai", "--device", "cpu"])
            .current_dir(&dir)
            .env("TUNEBOOK_CACHE", dir.join("cache"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let located = stderr.lines().any(|l| l.starts_with("error: case.rhai:") && l.contains(&expected[case]));
        if out.status.code() != Some(1) || !located || stderr.contains("panicked") || stderr.contains("internal error") {
            failures.push(format!("{case}: exit {:?}, wanted 1 and a line 'error: case.rhai:LINE:COL: ...{}...'; stderr:\n{stderr}", out.status.code(), expected[case]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let after = snapshot(&corpus());
    assert_eq!(before, after, "a broken input made Tunebook change or add files (the pickle case must not run `touch pwned`)");
    eprintln!("{} broken inputs, each refused with its message; {} files unchanged", cases.len(), after.len());
}
