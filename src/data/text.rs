//! Labelled text datasets.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::clean::{clean_text, CleanOptions, CleanReport, Cleaned};
use super::split::{kfold_with, split_with, Share, SplitSpec};
use super::Targets;
use crate::numbers::group_digits;
use crate::task::Task;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Datasets that `TextDataset::named` finds in the bootstrap's cache.
pub const NAMED_DATASETS: &[&str] = &["rotten_tomatoes", "bbc_news"];

/// Which CSV columns hold the text and the labels, and what the labels mean.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    /// Header of the text column.
    pub text: String,
    /// Headers of the label columns: one class column; for multi-label
    /// data one column of labels joined by `separator` or one 0/1 column
    /// per label; for regression one number column per output.
    pub labels: Vec<String>,
    /// What the labels are.
    pub task: Task,
    /// Joins several labels in one multi-label column (`sport|tech`).
    pub separator: String,
    /// Header of the second text's column, for sentence pairs.
    pub pair: Option<String>,
    /// Whether a file whose only columns are the text (and pair) loads as
    /// unlabelled rows, for prediction: when no label was named. (No label
    /// columns at all, `labels` empty, always means unlabelled.)
    pub labels_optional: bool,
    /// Whether the user named the text column; if not, and the file has no
    /// `text` column, Hugging Face's usual names are tried (`resolve`).
    pub text_named: bool,
    /// Whether the user named the label columns; as `text_named`.
    pub labels_named: bool,
}

/// Which files of a folder of class subfolders are read as texts.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderOptions {
    /// File extensions read as text, lower case, without the dot (`txt`).
    pub extensions: Vec<String>,
    /// Whether files in folders nested in a class folder are read too,
    /// labelled with that class; otherwise they are reported.
    pub recursive: bool,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self { extensions: vec!["txt".to_string()], recursive: false }
    }
}

/// What reading a folder left out or read in another encoding.
#[derive(Debug, Default)]
struct FolderReport {
    /// Files skipped by extension, counted by extension (`""` for none).
    other_files: BTreeMap<String, usize>,
    /// Folders inside class folders, when not read.
    nested: Vec<std::path::PathBuf>,
    /// Files with NUL bytes and no UTF-16 byte-order mark.
    binary: Vec<std::path::PathBuf>,
    /// Files that are not UTF-8, read as Latin-1.
    latin1: Vec<std::path::PathBuf>,
}

impl FolderReport {
    /// One note per kind of thing left out, with counts and the first paths.
    fn notes(&self, opts: &FolderOptions) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.other_files.is_empty() {
            let mut by_count: Vec<(&String, &usize)> = self.other_files.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let each: Vec<String> = by_count
                .iter()
                .map(|(ext, n)| format!("{} {} file{}", group_digits(**n as i64), if ext.is_empty() { "extensionless".to_string() } else { format!(".{ext}") }, if **n == 1 { "" } else { "s" }))
                .collect();
            let wanted: Vec<String> = opts.extensions.iter().map(|e| format!(".{e}")).collect();
            let suggestion: Vec<String> = opts.extensions.iter().chain(by_count.first().map(|(e, _)| *e)).filter(|e| !e.is_empty()).map(|e| format!("{e:?}")).collect();
            notes.push(format!(
                "skipped {} (only {} files are read as text; to read others give extensions: [{}])",
                each.join(", "),
                wanted.join(", "),
                suggestion.join(", ")
            ));
        }
        if !self.nested.is_empty() {
            notes.push(format!("skipped {} nested folder{} ({}); add recursive: true to read their files as their class's", self.nested.len(), if self.nested.len() == 1 { "" } else { "s" }, first_paths(&self.nested)));
        }
        if !self.binary.is_empty() {
            notes.push(format!("skipped {} binary file{} (NUL bytes, no UTF-16 byte-order mark): {}", self.binary.len(), if self.binary.len() == 1 { "" } else { "s" }, first_paths(&self.binary)));
        }
        if !self.latin1.is_empty() {
            notes.push(format!("{} file{} not UTF-8, read as Latin-1: {}", self.latin1.len(), if self.latin1.len() == 1 { " is" } else { "s are" }, first_paths(&self.latin1)));
        }
        notes
    }
}

/// The first three paths, and how many more.
fn first_paths(paths: &[std::path::PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().take(3).map(|p| p.display().to_string()).collect();
    match paths.len() {
        n if n > 3 => format!("{} and {} more", shown.join(", "), group_digits((n - 3) as i64)),
        _ => shown.join(", "),
    }
}

/// Whether a file or folder name is hidden (`.DS_Store`, `.git`).
pub(crate) fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The text files of a class folder, sorted, as `opts` says; what is left
/// out goes to `report`.
fn text_files(class: &Path, opts: &FolderOptions, report: &mut FolderReport) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![class.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).with_context(|| format!("cannot read the folder {}", folder.display()))?;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if is_hidden(&path) {
                continue;
            }
            if path.is_dir() {
                if opts.recursive {
                    folders.push(path);
                } else {
                    report.nested.push(path);
                }
                continue;
            }
            let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
            if opts.extensions.contains(&ext) {
                files.push(path);
            } else {
                *report.other_files.entry(ext).or_default() += 1;
            }
        }
    }
    files.sort();
    report.nested.sort();
    Ok(files)
}

/// A file's bytes as text.
enum Decoded {
    /// UTF-8 (a byte-order mark removed), or UTF-16 by its byte-order mark.
    Text(String),
    /// Not UTF-8: each byte as its Latin-1 character.
    Latin1(String),
    /// NUL bytes without a UTF-16 byte-order mark.
    Binary,
}

/// Decodes a text file: a UTF-8 or UTF-16 byte-order mark decides; else
/// UTF-8, and Latin-1 when it is not. A NUL byte means binary.
fn decode_text(bytes: Vec<u8>) -> Decoded {
    let utf16 = |body: &[u8], le: bool| {
        let units = body.chunks_exact(2).map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) });
        char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect::<String>()
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, body @ ..] => return Decoded::Text(utf16(body, true)),
        [0xFE, 0xFF, body @ ..] => return Decoded::Text(utf16(body, false)),
        [0xEF, 0xBB, 0xBF, body @ ..] => return Decoded::Text(String::from_utf8_lossy(body).into_owned()),
        _ => {}
    }
    if bytes.contains(&0) {
        return Decoded::Binary;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Decoded::Text(text),
        Err(e) => Decoded::Latin1(e.into_bytes().iter().map(|&b| b as char).collect()),
    }
}

/// A JSON value as a label cell: strings as they are, numbers and booleans
/// written out, arrays joined by `separator`, null as empty.
pub(crate) fn json_cell(v: &serde_json::Value, separator: &str) -> String {
    match v {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(items) => items.iter().map(|x| json_cell(x, separator)).collect::<Vec<_>>().join(separator),
        other => other.to_string(),
    }
}

impl CsvColumns {
    /// Refuses column choices that cannot describe the task.
    fn check(&self, source: &Path) -> Result<()> {
        if self.labels.is_empty() {
            bail!("{}: name at least one label column", source.display());
        }
        if self.task == Task::Classify && self.labels.len() > 1 {
            bail!("{}: single-label data has one label column, got {}; for one 0/1 column per label use task: \"multi_label\"", source.display(), self.labels.join(", "));
        }
        Ok(())
    }

    /// A text column and one class column.
    pub fn classes(text: &str, label: &str) -> Self {
        Self { text: text.into(), labels: vec![label.into()], task: Task::Classify, separator: "|".into(), pair: None, labels_optional: false, text_named: true, labels_named: true }
    }

    /// The columns for a file that has the columns `have`: a text or label
    /// column the user did not name, and the file lacks, becomes the first
    /// of Hugging Face's usual names the file has (text: `sentence`, or
    /// `tokens` for token classification; label: `labels`, or `ner_tags`
    /// and `tags` for token classification).
    pub fn resolve(&self, have: &[&str]) -> Self {
        let mut cols = self.clone();
        let pick = |candidates: &[&str]| candidates.iter().find(|c| have.contains(c)).map(|c| c.to_string());
        let tokens = self.task == Task::Tokens;
        if !self.text_named && !have.contains(&self.text.as_str()) {
            if let Some(text) = pick(if tokens { &["tokens", "words"] } else { &["sentence"] }) {
                cols.text = text;
            }
        }
        if !self.labels_named && self.labels.len() == 1 && !have.contains(&self.labels[0].as_str()) {
            if let Some(label) = pick(if tokens { &["ner_tags", "tags", "labels"] } else { &["labels"] }) {
                cols.labels = vec![label];
            }
        }
        cols
    }
}

/// Refuses, with what to do instead, a data file that is empty or UTF-16
/// encoded (as spreadsheet programs' "Unicode text" export is): the readers
/// would otherwise report a missing column or an invalid byte.
fn check_table_file(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut start = [0u8; 2];
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = file.take(2).read(&mut start).with_context(|| format!("cannot read {}", path.display()))?;
    if n == 0 {
        bail!("{} is empty; a data file needs a header row naming its columns (text,label) and one row per example", path.display());
    }
    if n == 2 && (start == [0xFF, 0xFE] || start == [0xFE, 0xFF]) {
        bail!("{} is UTF-16 text; save it as UTF-8 (most editors and spreadsheets offer \"CSV UTF-8\" when saving)", path.display());
    }
    Ok(())
}

/// Label names in the order their ids follow: by number when every name is
/// an integer (so that 2 comes before 10), else sorted as text.
pub fn sorted_label_names(names: std::collections::BTreeSet<String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or_default());
    }
    names
}

/// The names found, as ids will follow them: `order` when given (which
/// must hold every name found; `what` names them in the error), else sorted.
fn names_in_order(found: std::collections::BTreeSet<String>, order: Option<&[String]>, source: &Path, what: &str) -> Result<Vec<String>> {
    let Some(order) = order else { return Ok(sorted_label_names(found)) };
    if let Some(unknown) = found.iter().find(|n| !order.contains(n)) {
        bail!("{}: the {what} '{unknown}' is not one of the {what} names {}", source.display(), order.join(", "));
    }
    Ok(order.to_vec())
}

/// One row as read from a file or a script, before its labels are parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// The text.
    pub text: String,
    /// The second text of a sentence pair, if the data has pairs.
    pub pair: Option<String>,
    /// One cell per label column.
    pub cells: Vec<String>,
    /// Where it came from (a file's line, a script's row number), for errors.
    pub line: u64,
}

/// Texts with their targets and the names of the labels (or outputs).
#[derive(Debug, Clone, Default)]
pub struct TextDataset {
    /// A short description of where the rows came from.
    pub name: String,
    /// One text per row.
    pub texts: Vec<String>,
    /// The second text of each row, for sentence-pair tasks (entailment,
    /// paraphrase); tokenized as `[CLS] text [SEP] pair [SEP]`.
    pub pairs: Option<Vec<String>>,
    /// One target per row.
    pub targets: Targets,
    /// Class names by id, label names (multi-label) or output names (regression).
    pub label_names: Vec<String>,
    /// What loading changed or left out, for the user to read: rows
    /// dropped for a missing label, files repaired to UTF-8.
    pub notes: Vec<String>,
}

impl TextDataset {
    /// A dataset from the bootstrap's cache, by name.
    pub fn named(name: &str, cache: &Path) -> Result<Self> {
        match name {
            "rotten_tomatoes" => {
                let path = cache.join("datasets/rotten_tomatoes/rotten_tomatoes_corpus_full.csv");
                if !path.exists() {
                    bail!("dataset 'rotten_tomatoes' is not in the cache {}; run scripts/bootstrap", cache.display());
                }
                let cols = CsvColumns::classes("text", "category");
                // The corpus mixes review snippets with movie plots; only the reviews are labelled.
                let label_order = ["rotten".to_string(), "fresh".to_string()];
                let mut data = Self::from_csv_filtered(&path, &cols, Some(&label_order))?;
                data.name = "rotten_tomatoes".into();
                Ok(data)
            }
            "bbc_news" => {
                let dir = cache.join("datasets/bbc_news");
                if !dir.join(".tunebook-complete").exists() {
                    bail!("dataset 'bbc_news' is not in the cache {}; run scripts/bootstrap", cache.display());
                }
                let mut data = Self::from_folders(&dir, &FolderOptions::default())?;
                data.name = "bbc_news".into();
                Ok(data)
            }
            _ => bail!("no dataset named '{name}'; named datasets: {}", NAMED_DATASETS.join(", ")),
        }
    }

    /// Reads a folder with one subfolder per class and one text file per
    /// row (`business/001.txt`, ...), as `opts` says which files are text.
    /// Classes and files are in sorted order. Hidden files are ignored;
    /// other files, nested folders, binary files and files that are not
    /// UTF-8 (read as Latin-1) are each reported in one note; a UTF-16
    /// file with a byte-order mark is decoded as UTF-16.
    pub fn from_folders(dir: &Path, opts: &FolderOptions) -> Result<Self> {
        let has_subfolders = std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| e.path().is_dir() && !is_hidden(&e.path()));
        if !has_subfolders {
            return Self::from_plain_folder(dir, opts);
        }
        let classes = super::class_folders(dir, "")?;
        let mut data = Self { name: dir.display().to_string(), ..Default::default() };
        let mut ids = Vec::new();
        let mut report = FolderReport::default();
        for (id, class) in classes.iter().enumerate() {
            data.label_names.push(class.file_name().unwrap_or_default().to_string_lossy().into_owned());
            for file in text_files(class, opts, &mut report)? {
                let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
                match decode_text(bytes) {
                    Decoded::Text(text) => data.texts.push(text),
                    Decoded::Latin1(text) => {
                        report.latin1.push(file);
                        data.texts.push(text);
                    }
                    Decoded::Binary => {
                        report.binary.push(file);
                        continue;
                    }
                }
                ids.push(id as i64);
            }
        }
        data.notes.extend(report.notes(opts));
        data.targets = Targets::Classes(ids);
        Ok(data)
    }

    /// A folder of text files without class subfolders: unlabelled rows,
    /// to predict on.
    fn from_plain_folder(dir: &Path, opts: &FolderOptions) -> Result<Self> {
        let mut report = FolderReport::default();
        let mut rows = Vec::new();
        for file in text_files(dir, opts, &mut report)? {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let text = match decode_text(bytes) {
                Decoded::Text(t) => t,
                Decoded::Latin1(t) => {
                    report.latin1.push(file);
                    t
                }
                Decoded::Binary => {
                    report.binary.push(file);
                    continue;
                }
            };
            rows.push(RawRow { text, pair: None, cells: Vec::new(), line: 0 });
        }
        if rows.is_empty() {
            bail!("{} has no class subfolders and no text files ({}); a labelled folder has one subfolder per class", dir.display(), opts.extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", "));
        }
        let mut data = Self::unlabelled(dir, rows, "no class subfolders");
        data.notes.extend(report.notes(opts));
        Ok(data)
    }

    /// Reads a CSV file with a header (tab-separated when it ends in
    /// `.tsv`). Class labels are mapped to ids in sorted order.
    pub fn from_csv(path: &Path, cols: &CsvColumns) -> Result<Self> {
        Self::from_csv_filtered(path, cols, None)
    }

    /// Reads a CSV file; with `label_order` (single-label data), rows whose
    /// label is not in it are skipped and ids follow that order.
    fn from_csv_filtered(path: &Path, cols: &CsvColumns, label_order: Option<&[String]>) -> Result<Self> {
        check_table_file(path)?;
        let tsv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(if tsv { b'\t' } else { b',' })
            .flexible(false)
            .from_path(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let headers = reader.headers().with_context(|| format!("{}: cannot read the header row", path.display()))?.clone();
        let cols = &cols.resolve(&headers.iter().collect::<Vec<_>>());
        let find = |want: &str| {
            headers.iter().position(|h| h == want).with_context(|| {
                let have: Vec<&str> = headers.iter().collect();
                format!("{}: no column '{want}'; columns: {}", path.display(), have.join(", "))
            })
        };
        let ti = find(&cols.text)?;
        let pi = cols.pair.as_deref().map(find).transpose()?;
        let only_text = headers.len() == 1 + usize::from(pi.is_some());
        let lis = match cols.labels.iter().map(|l| find(l)).collect::<Result<Vec<_>>>() {
            _ if cols.labels.is_empty() => None,
            Err(_) if cols.labels_optional && only_text => None,
            Err(e) if cols.labels_optional => bail!("{e}; name the label column with label: \"...\", or give label: \"\" to load the rows without labels (to predict on)"),
            Err(e) => return Err(e),
            Ok(lis) => Some(lis),
        };
        if lis.is_some() {
            cols.check(path)?;
        }
        let mut rows = Vec::new();
        for (i, record) in reader.byte_records().enumerate() {
            // Header is line 1; records start at line 2 (multi-line fields shift this, the csv position is exact).
            let record = record.with_context(|| format!("{}: bad CSV row {}", path.display(), i + 2))?;
            let line = record.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
            let text = String::from_utf8_lossy(record.get(ti).unwrap_or_default()).into_owned();
            let cells = lis
                .iter()
                .flatten()
                .map(|&li| {
                    String::from_utf8(record.get(li).unwrap_or_default().to_vec())
                        .map(|c| c.trim().to_string())
                        .with_context(|| format!("{}:{line}: the label is not valid UTF-8", path.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let pair = pi.map(|pi| String::from_utf8_lossy(record.get(pi).unwrap_or_default()).into_owned());
            rows.push(RawRow { text, pair, cells, line });
        }
        match lis {
            Some(_) => Self::from_cells(path, rows, cols, label_order),
            None => Ok(Self::unlabelled(path, rows, &format!("no '{}' column", cols.labels.join("', '")))),
        }
    }

    /// Rows without labels, to predict on; `why` says what was missing.
    fn unlabelled(source: &Path, rows: Vec<RawRow>, why: &str) -> Self {
        Self::without_labels(source, rows, why, false)
    }

    /// Rows without labels; `labels_withheld` when the file has a label
    /// column whose every cell is missing (so naming it would not help).
    pub(crate) fn without_labels(source: &Path, rows: Vec<RawRow>, why: &str, labels_withheld: bool) -> Self {
        let n = rows.len();
        let pairs = rows.first().is_some_and(|r| r.pair.is_some()).then(|| rows.iter().map(|r| r.pair.clone().unwrap_or_default()).collect());
        Self {
            name: source.display().to_string(),
            texts: rows.into_iter().map(|r| r.text).collect(),
            pairs,
            targets: Targets::Unlabelled(n),
            label_names: Vec::new(),
            notes: vec![format!("{}: {why}, so its {} rows have no labels: they are for predict(model, data){}", source.display(), group_digits(n as i64), if labels_withheld { "" } else { "; to train on them, name the label with label: \"...\"" })],
        }
    }

    /// Reads a JSON Lines file: one object per line with the text and
    /// label fields `cols` names. A multi-label field may hold an array.
    pub fn from_jsonl(path: &Path, cols: &CsvColumns) -> Result<Self> {
        check_table_file(path)?;
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let line_no = i as u64 + 1;
            match serde_json::from_str(line) {
                Ok(serde_json::Value::Object(obj)) => rows.push((line_no, obj)),
                _ => bail!("{}:{line_no}: not a JSON object", path.display()),
            }
        }
        Self::from_json_rows(path, rows, cols, None)
    }

    /// Rows as JSON objects with their line (or row) numbers, from a JSON
    /// Lines file or a Parquet or Arrow table: the text field is a string
    /// or an array of words (null reads as empty, and is counted in a note);
    /// label fields are strings, numbers or arrays (see `json_cell`). The
    /// first row decides whether the rows are labelled. `label_order` gives
    /// the class (or tag) names in their order, as in `from_cells`.
    pub fn from_json_rows(source: &Path, rows: Vec<(u64, serde_json::Map<String, serde_json::Value>)>, cols: &CsvColumns, label_order: Option<&[String]>) -> Result<Self> {
        let cols = &match rows.first() {
            Some((_, first)) => cols.resolve(&first.keys().map(String::as_str).collect::<Vec<_>>()),
            None => cols.clone(),
        };
        let (raw, unlabelled, null_texts) = Self::raw_json_rows(source, rows, cols)?;
        let mut data = if unlabelled { Self::unlabelled(source, raw, &format!("no '{}' field", cols.labels.join("', '"))) } else { Self::from_cells(source, raw, cols, label_order)? };
        data.note_null_texts(source, null_texts);
        Ok(data)
    }

    /// JSON rows as raw rows, whether they are unlabelled (the first row
    /// decides), and how many texts were null.
    pub(crate) fn raw_json_rows(source: &Path, rows: Vec<(u64, serde_json::Map<String, serde_json::Value>)>, cols: &CsvColumns) -> Result<(Vec<RawRow>, bool, usize)> {
        let mut raw = Vec::with_capacity(rows.len());
        let (mut unlabelled, mut null_texts) = (false, 0usize);
        for (line_no, obj) in rows {
            let field = |name: &str| {
                obj.get(name).with_context(|| {
                    let have: Vec<&str> = obj.keys().map(String::as_str).collect();
                    format!("{}:{line_no}: no field '{name}'; fields: {}", source.display(), have.join(", "))
                })
            };
            let text = match field(&cols.text)? {
                serde_json::Value::String(t) => t.clone(),
                serde_json::Value::Null => {
                    null_texts += 1;
                    String::new()
                }
                // Pre-split words (token classification).
                serde_json::Value::Array(words) if words.iter().all(|w| w.is_string()) => words.iter().filter_map(|w| w.as_str()).collect::<Vec<_>>().join(" "),
                other => bail!("{}:{line_no}: field '{}' must be a string (or an array of words), got {other}", source.display(), cols.text),
            };
            let only_text = obj.keys().all(|k| *k == cols.text || cols.pair.as_ref() == Some(k));
            if raw.is_empty() && (cols.labels.is_empty() || (cols.labels_optional && only_text)) {
                unlabelled = true;
            }
            let cells = if unlabelled { Vec::new() } else { cols.labels.iter().map(|l| Ok(json_cell(field(l)?, &cols.separator))).collect::<Result<Vec<_>>>()? };
            let pair = cols.pair.as_deref().map(|p| Ok::<_, anyhow::Error>(json_cell(field(p)?, " "))).transpose()?;
            raw.push(RawRow { text, pair, cells, line: line_no });
        }
        Ok((raw, unlabelled, null_texts))
    }

    /// Says how many texts were null (and read as empty), if any.
    pub(crate) fn note_null_texts(&mut self, source: &Path, null_texts: usize) {
        if null_texts > 0 {
            self.notes.push(format!("{}: {} rows have no text (null), read as empty", source.display(), group_digits(null_texts as i64)));
        }
    }

    /// Says how many texts are empty or whitespace only, if any; `rows`
    /// names what a row is (`rows`, `files`).
    pub(crate) fn note_empty_texts(&mut self, rows: &str) {
        let empty = self.texts.iter().filter(|t| t.trim().is_empty()).count();
        if empty > 0 {
            self.notes.push(format!("{empty} {rows} of {} are empty or whitespace only; .clean() drops them", group_digits(self.texts.len() as i64)));
        }
    }

    /// Token-classification data from rows of (words, tags, line): tag
    /// names are mapped to ids in `tag_order`, else in sorted order; the
    /// text is the words joined by spaces.
    pub fn from_token_rows(source: &Path, rows: Vec<(Vec<String>, Vec<String>, u64)>, tag_order: Option<&[String]>) -> Result<Self> {
        let mut names = std::collections::BTreeSet::new();
        for (words, tags, line) in &rows {
            if words.len() != tags.len() {
                bail!("{}:{line}: {} words but {} tags; give one tag per word", source.display(), words.len(), tags.len());
            }
            if let Some(w) = words.iter().find(|w| w.is_empty() || w.chars().any(char::is_whitespace)) {
                bail!("{}:{line}: the word {w:?} is empty or holds a space; split words apart", source.display());
            }
            names.extend(tags.iter().cloned());
        }
        let label_names = names_in_order(names, tag_order, source, "tag")?;
        let ids: BTreeMap<&str, i64> = label_names.iter().enumerate().map(|(i, l)| (l.as_str(), i as i64)).collect();
        let (mut texts, mut targets) = (Vec::new(), Vec::new());
        for (words, tags, _) in rows.into_iter().filter(|(w, _, _)| !w.is_empty()) {
            texts.push(words.join(" "));
            targets.push(tags.iter().map(|t| ids[t.as_str()]).collect());
        }
        if texts.is_empty() {
            bail!("{}: no tagged sentences found", source.display());
        }
        Ok(Self { name: source.display().to_string(), texts, pairs: None, targets: Targets::Tokens(targets), label_names, notes: Vec::new() })
    }

    /// Reads a CoNLL file: one word per line with its tag in the last
    /// column (`EU B-ORG`), a blank line between sentences; `-DOCSTART-`
    /// lines are skipped.
    pub fn from_conll(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (mut rows, mut words, mut tags, mut start) = (Vec::new(), Vec::new(), Vec::new(), 1u64);
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() || fields[0] == "-DOCSTART-" {
                if !words.is_empty() {
                    rows.push((std::mem::take(&mut words), std::mem::take(&mut tags), start));
                }
                start = i as u64 + 2;
                continue;
            }
            if fields.len() < 2 {
                bail!("{}:{}: a CoNLL line holds a word and its tag, separated by a space; got {line:?}", path.display(), i + 1);
            }
            words.push(fields[0].to_string());
            tags.push(fields[fields.len() - 1].to_string());
        }
        if !words.is_empty() {
            rows.push((words, tags, start));
        }
        Self::from_token_rows(path, rows, None)
    }

    /// A dataset from raw rows, one label cell per label column of `cols`;
    /// `source` names where they came from.
    pub fn from_cells(source: &Path, rows: Vec<RawRow>, cols: &CsvColumns, label_order: Option<&[String]>) -> Result<Self> {
        Self::from_cells_kept(source, rows, cols, label_order).map(|(data, _)| data)
    }

    /// As `from_cells`, with the positions in `rows` of the rows kept.
    pub(crate) fn from_cells_kept(source: &Path, rows: Vec<RawRow>, cols: &CsvColumns, label_order: Option<&[String]>) -> Result<(Self, Vec<usize>)> {
        cols.check(source)?;
        let (kept, targets, label_names) = match cols.task {
            Task::Classify => Self::classes_from_cells(&rows, label_order),
            Task::MultiLabel => Self::multi_label_from_cells(source, &rows, cols, label_order)?,
            Task::Regression => Self::values_from_cells(source, &rows, cols)?,
            Task::NextToken => bail!("{}: labelled columns are for classifiers and regression; a language model's text needs no labels", source.display()),
            Task::Tokens => {
                if cols.pair.is_some() {
                    bail!("{}: token classification tags the words of one text; it takes no 'pair'", source.display());
                }
                // Words are split on whitespace; tags on the separator when it occurs, else on whitespace.
                let kept = rows.iter().enumerate().filter(|(_, r)| r.text.split_whitespace().next().is_some()).map(|(i, _)| i).collect();
                let rows = rows
                    .into_iter()
                    .map(|r| {
                        let tags: Vec<String> = if r.cells[0].contains(cols.separator.as_str()) {
                            r.cells[0].split(cols.separator.as_str()).map(|t| t.trim().to_string()).collect()
                        } else {
                            r.cells[0].split_whitespace().map(str::to_string).collect()
                        };
                        (r.text.split_whitespace().map(str::to_string).collect(), tags, r.line)
                    })
                    .collect();
                return Ok((Self::from_token_rows(source, rows, label_order)?, kept));
            }
        };
        if kept.is_empty() {
            bail!("{}: no labelled rows found", source.display());
        }
        let texts = kept.iter().map(|&i| rows[i].text.clone()).collect();
        let pairs = cols.pair.as_ref().map(|_| kept.iter().map(|&i| rows[i].pair.clone().unwrap_or_default()).collect());
        // A row with an empty label cell is dropped, and said so (rows whose
        // label a named dataset does not use are left out silently).
        let unlabelled: Vec<u64> = rows.iter().filter(|r| cols.task == Task::Classify && r.cells[0].is_empty()).map(|r| r.line).collect();
        let mut notes = Vec::new();
        if !unlabelled.is_empty() {
            let lines: Vec<String> = unlabelled.iter().take(5).map(u64::to_string).collect();
            let more = if unlabelled.len() > 5 { ", ..." } else { "" };
            notes.push(format!("{}: dropped {} rows without a label (lines {}{more})", source.display(), unlabelled.len(), lines.join(", ")));
        }
        Ok((Self { name: source.display().to_string(), texts, pairs, targets, label_names, notes }, kept))
    }

    fn classes_from_cells(rows: &[RawRow], label_order: Option<&[String]>) -> (Vec<usize>, Targets, Vec<String>) {
        let label_names: Vec<String> = match label_order {
            Some(order) => order.to_vec(),
            None => sorted_label_names(rows.iter().map(|r| r.cells[0].clone()).filter(|l| !l.is_empty()).collect()),
        };
        let ids: BTreeMap<&str, i64> = label_names.iter().enumerate().map(|(i, l)| (l.as_str(), i as i64)).collect();
        let (mut kept, mut labels) = (Vec::new(), Vec::new());
        for (i, r) in rows.iter().enumerate() {
            if let Some(&id) = ids.get(r.cells[0].as_str()) {
                kept.push(i);
                labels.push(id);
            }
        }
        (kept, Targets::Classes(labels), label_names)
    }

    fn multi_label_from_cells(path: &Path, rows: &[RawRow], cols: &CsvColumns, label_order: Option<&[String]>) -> Result<(Vec<usize>, Targets, Vec<String>)> {
        let mut targets = Vec::new();
        if cols.labels.len() > 1 {
            // One 0/1 column per label.
            for r in rows {
                let row = r
                    .cells
                    .iter()
                    .zip(&cols.labels)
                    .map(|(c, name)| match c.as_str() {
                        "1" | "1.0" | "true" | "True" => Ok(1.0),
                        "0" | "0.0" | "false" | "False" => Ok(0.0),
                        other => bail!("{}:{}: column '{name}' holds '{other}'; a label column holds 0 or 1", path.display(), r.line),
                    })
                    .collect::<Result<Vec<f32>>>()?;
                targets.push(row);
            }
            return Ok(((0..rows.len()).collect(), Targets::MultiLabel(targets), cols.labels.clone()));
        }
        // One column of labels joined by the separator; a row may have none.
        let split = |c: &str| c.split(cols.separator.as_str()).map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect::<Vec<_>>();
        let names: std::collections::BTreeSet<String> = rows.iter().flat_map(|r| split(&r.cells[0])).collect();
        if names.is_empty() {
            bail!("{}: column '{}' holds no labels", path.display(), cols.labels[0]);
        }
        let label_names = names_in_order(names, label_order, path, "label")?;
        let ids: BTreeMap<&str, usize> = label_names.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
        for r in rows {
            let mut row = vec![0.0f32; label_names.len()];
            for l in split(&r.cells[0]) {
                row[ids[l.as_str()]] = 1.0;
            }
            targets.push(row);
        }
        Ok(((0..rows.len()).collect(), Targets::MultiLabel(targets), label_names))
    }

    fn values_from_cells(path: &Path, rows: &[RawRow], cols: &CsvColumns) -> Result<(Vec<usize>, Targets, Vec<String>)> {
        let mut targets = Vec::new();
        for r in rows {
            let row = r
                .cells
                .iter()
                .zip(&cols.labels)
                .map(|(c, name)| match c.parse::<f32>() {
                    Ok(x) if x.is_finite() => Ok(x),
                    _ if c.is_empty() => bail!("{}:{}: column '{name}' is empty; every row of regression data needs a number", path.display(), r.line),
                    _ => bail!("{}:{}: column '{name}' holds '{c}', which is not a number", path.display(), r.line),
                })
                .collect::<Result<Vec<f32>>>()?;
            targets.push(row);
        }
        Ok(((0..rows.len()).collect(), Targets::Values(targets), cols.labels.clone()))
    }

    /// Builds a dataset from texts and label names (labels mapped in sorted order).
    pub fn from_pairs(name: &str, pairs: &[(String, String)]) -> Result<Self> {
        let set: std::collections::BTreeSet<&String> = pairs.iter().map(|(_, l)| l).collect();
        let label_names: Vec<String> = set.into_iter().cloned().collect();
        let labels = pairs.iter().map(|(_, l)| label_names.iter().position(|n| n == l).unwrap() as i64).collect();
        Ok(Self { name: name.into(), texts: pairs.iter().map(|(t, _)| t.clone()).collect(), pairs: None, targets: Targets::Classes(labels), label_names, notes: Vec::new() })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// What the targets are for.
    pub fn task(&self) -> Task {
        self.targets.task()
    }

    /// Rows per class (or per label, for multi-label data), in label-id
    /// order; empty for regression.
    pub fn class_counts(&self) -> Vec<(String, usize)> {
        self.targets.named_counts(&self.label_names)
    }

    /// Cleans with the default steps: control characters and runs of
    /// whitespace become one space, then empty rows and exact duplicates go.
    pub fn clean(&self) -> (Self, CleanReport) {
        self.clean_with(&CleanOptions::default())
    }

    /// Cleans with the steps `opts` turns on; see `CleanOptions`.
    pub fn clean_with(&self, opts: &CleanOptions) -> (Self, CleanReport) {
        let mut report = CleanReport { rows_before: self.len(), ..Default::default() };
        let mut seen = HashSet::new();
        let mut out = Self { name: self.name.clone(), label_names: self.label_names.clone(), targets: self.targets.empty_like(), ..Default::default() };
        // Token data keeps its words as they are: changing them would break the tag per word.
        let keep_words = self.task() == Task::Tokens;
        let mut out_pairs = self.pairs.as_ref().map(|_| Vec::new());
        for (i, text) in self.texts.iter().enumerate() {
            let cleaned = if keep_words { if text.is_empty() { Cleaned::Empty } else { Cleaned::Keep(text.clone()) } } else { clean_text(text, opts, &mut report) };
            // A pair's second text is cleaned the same way; the row goes if either goes.
            let (cleaned, pair) = match (cleaned, self.pairs.as_ref().map(|p| clean_text(&p[i], opts, &mut report))) {
                (Cleaned::Keep(t), Some(Cleaned::Keep(p))) => (Cleaned::Keep(t), Some(p)),
                (Cleaned::Keep(_), Some(other)) => (other, None),
                (c, _) => (c, None),
            };
            match cleaned {
                Cleaned::Empty => report.empty += 1,
                Cleaned::TooShort => report.too_short += 1,
                Cleaned::TooLong => report.too_long += 1,
                Cleaned::Keep(text) if opts.dedupe && !seen.insert(format!("{text}\u{1}{}", pair.as_deref().unwrap_or(""))) => report.duplicates += 1,
                Cleaned::Keep(text) => {
                    out.texts.push(text);
                    if let (Some(v), Some(p)) = (out_pairs.as_mut(), pair) {
                        v.push(p);
                    }
                    out.targets.push_from(&self.targets, i);
                }
            }
        }
        out.pairs = out_pairs;
        report.rows_after = out.len();
        (out, report)
    }

    /// Shuffles with `seed` and splits off a `val_fraction` share for validation.
    pub fn split(&self, val_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let (train, val, _) = self.split_parts(&SplitSpec { val: Share::Fraction(val_fraction), test: None, seed, stratify: false })?;
        Ok((train, val))
    }

    /// How many of `other`'s rows have the same text (and pair) as a row
    /// of this dataset: duplicates that a split put on both sides.
    pub fn rows_also_in(&self, other: &Self) -> usize {
        let key = |d: &Self, i: usize| (d.texts[i].clone(), d.pairs.as_ref().map(|p| p[i].clone()));
        let mine: HashSet<(String, Option<String>)> = (0..self.len()).map(|i| key(self, i)).collect();
        (0..other.len()).filter(|&i| mine.contains(&key(other, i))).count()
    }

    /// Train, validation and (when `spec` has one) test parts.
    pub fn split_parts(&self, spec: &SplitSpec) -> Result<(Self, Self, Option<Self>)> {
        split_with(&self.targets, spec, |rows, part| self.subset(rows, part))
    }

    /// `k` (train, validation) folds; see `split::kfold_indices`.
    pub fn kfold(&self, k: usize, seed: u64, stratify: bool) -> Result<Vec<(Self, Self)>> {
        kfold_with(&self.targets, k, seed, stratify, |rows, part| self.subset(rows, part))
    }

    /// The first `n` rows (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Self {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx, "")
    }

    /// The rows in a seeded random order.
    pub fn shuffle(&self, seed: u64) -> Self {
        self.subset(&self.shuffled_indices(seed), "")
    }

    fn shuffled_indices(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        order
    }

    /// The same rows with class ids in `order` (a head's label names), so
    /// that id i means `order[i]` whatever order the data's names sorted in.
    /// Unchanged when the data is not single-label, when it already is in
    /// that order, or when none of its class names are in `order` (numeric
    /// labels `0`, `1` meant by position); an error when only some are.
    pub fn in_label_order(&self, order: &[String]) -> Result<Self> {
        let Targets::Classes(ids) = &self.targets else { return Ok(self.clone()) };
        if self.label_names == order {
            return Ok(self.clone());
        }
        let positions: Vec<Option<usize>> = self.label_names.iter().map(|n| order.iter().position(|o| o == n)).collect();
        if positions.iter().all(Option::is_none) {
            return Ok(self.clone());
        }
        let missing: Vec<&str> = self.label_names.iter().zip(&positions).filter(|(_, p)| p.is_none()).map(|(n, _)| n.as_str()).collect();
        if !missing.is_empty() {
            bail!(
                "{}: the classes {} are not among the model's labels ({}); load the model with labels: [{}]",
                self.name,
                missing.join(", "),
                order.join(", "),
                self.label_names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
            );
        }
        let ids = ids.iter().map(|&i| positions[i as usize].expect("every class has a position") as i64).collect();
        Ok(Self { targets: Targets::Classes(ids), label_names: order.to_vec(), ..self.clone() })
    }

    fn subset(&self, idx: &[usize], part: &str) -> Self {
        Self {
            name: if part.is_empty() { self.name.clone() } else { format!("{}/{part}", self.name) },
            texts: idx.iter().map(|&i| self.texts[i].clone()).collect(),
            pairs: self.pairs.as_ref().map(|p| idx.iter().map(|&i| p[i].clone()).collect()),
            targets: self.targets.subset(idx),
            label_names: self.label_names.clone(),
            // Notes are about loading, said once when it happened.
            notes: Vec::new(),
        }
    }
}

impl std::fmt::Display for TextDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.targets.is_labelled() {
            return write!(f, "Dataset {} ({} rows; unlabelled, for predict)", self.name, self.len());
        }
        match self.task() {
            Task::Regression => write!(f, "Dataset {} ({} rows; regression on {})", self.name, self.len(), self.label_names.join(", ")),
            task => {
                let counts: Vec<String> = self.class_counts().iter().map(|(l, n)| format!("{l}: {n}")).collect();
                let kind = if task == Task::MultiLabel { "multi-label; " } else { "" };
                write!(f, "Dataset {} ({} rows; {kind}{})", self.name, self.len(), counts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod label_order_tests {
    use super::*;

    fn reviews() -> TextDataset {
        let pairs: Vec<(String, String)> = [("fun", "good"), ("dull", "bad"), ("great", "good")].iter().map(|(t, l)| (t.to_string(), l.to_string())).collect();
        TextDataset::from_pairs("reviews", &pairs).unwrap()
    }

    #[test]
    fn class_ids_follow_the_heads_label_order_by_name() {
        let data = reviews();
        assert_eq!(data.label_names, ["bad", "good"]);
        let ordered = data.in_label_order(&["good".into(), "bad".into()]).unwrap();
        assert_eq!(ordered.label_names, ["good", "bad"]);
        assert_eq!(ordered.targets, Targets::Classes(vec![0, 1, 0]));
        // A head with more classes than the data has is fine.
        let wider = data.in_label_order(&["neutral".into(), "bad".into(), "good".into()]).unwrap();
        assert_eq!(wider.targets, Targets::Classes(vec![2, 1, 2]));
    }

    #[test]
    fn unrelated_names_keep_their_positions_and_a_partial_match_is_an_error() {
        let data = reviews();
        let positional = data.in_label_order(&["neg".into(), "pos".into()]).unwrap();
        assert_eq!(positional.targets, data.targets);
        let err = data.in_label_order(&["good".into(), "meh".into()]).unwrap_err().to_string();
        assert!(err.contains("the classes bad are not among the model's labels (good, meh)"), "{err}");
    }
}
