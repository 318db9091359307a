//! Columnar data: Parquet files (one, a glob of shards, or a Hub dataset's
//! folder of them) and the folders Hugging Face `datasets` writes with
//! `save_to_disk` (Arrow IPC streams, `dataset_info.json`, `state.json`, and
//! `dataset_dict.json` over one subfolder per split). Read through the Apache
//! Arrow project's crates. The features `datasets` records (in
//! `dataset_info.json`, or in a file's `huggingface` metadata) are honoured:
//! a `ClassLabel` column's integers become its class names, in its order.
//!
//! A table keeps its record batches (Arrow's compact columns) and turns only
//! the columns a dataset uses into rows.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use serde_json::{Map, Value as Json};

use super::chat::{ChatDataset, Example};
use super::text::{sorted_label_names, CsvColumns, TextDataset};
use crate::task::Task;

/// Names a `datasets` split is saved under, in the order they are listed.
const SPLIT_ORDER: &[&str] = &["train", "validation", "valid", "dev", "test"];

/// Rows of one table (one split), as Arrow record batches.
#[derive(Debug)]
pub struct Table {
    /// Where the rows came from (a file, a glob, a folder), for messages.
    pub source: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// Class names of the columns whose feature is a `ClassLabel` (or a list of them).
    class_names: HashMap<String, Vec<String>>,
}

/// What a columnar source holds: one table, or named splits (a
/// `DatasetDict` folder, a Hub folder of `train-*.parquet`, `test-*.parquet`).
#[derive(Debug)]
pub enum Columnar {
    /// One table.
    One(Table),
    /// Splits by name, in the order they were saved (train first).
    Splits(Vec<(String, Table)>),
}

/// Whether `name` is a columnar source: a `.parquet` file or glob, a folder
/// written by `save_to_disk`, or a folder holding Parquet files.
pub fn is_columnar(name: &str) -> bool {
    let path = Path::new(name);
    if has_extension(path, "parquet") && (path.is_file() || is_glob(name)) || has_extension(path, "arrow") && path.is_file() {
        return true;
    }
    path.is_dir() && (is_datasets_folder(path) || !parquet_files(path).is_empty())
}

/// Reads a columnar source; see `is_columnar`.
pub fn read(name: &str) -> Result<Columnar> {
    let path = Path::new(name);
    if has_extension(path, "arrow") && path.is_file() {
        return Ok(Columnar::One(read_arrow_files(name, &[path.to_path_buf()], None)?));
    }
    if !is_glob(name) && is_datasets_folder(path) {
        return read_datasets_folder(path);
    }
    let mut parts = parquet_parts(name)?;
    if parts.len() == 1 {
        let (_, source, files) = parts.remove(0);
        return Ok(Columnar::One(read_parquet(&source, &files)?));
    }
    let tables = parts.into_iter().map(|(split, source, files)| Ok((split.unwrap_or_default(), read_parquet(&source, &files)?))).collect::<Result<Vec<_>>>()?;
    Ok(Columnar::Splits(tables))
}

/// The Parquet files of a source, as one part or one per split: (split,
/// the part's name for messages, its files in order). A `.parquet` file, a
/// glob of them, or a folder of them (split by their names, when every
/// file names one of at least two splits).
pub fn parquet_parts(name: &str) -> Result<Vec<(Option<String>, String, Vec<PathBuf>)>> {
    let path = Path::new(name);
    if is_glob(name) {
        let files: Vec<PathBuf> = glob::glob(name).with_context(|| format!("'{name}' is not a valid file pattern"))?.filter_map(|p| p.ok()).filter(|p| p.is_file()).collect();
        if files.is_empty() {
            bail!("no files match '{name}'");
        }
        return Ok(vec![(None, name.to_string(), files)]);
    }
    if path.is_file() {
        return Ok(vec![(None, name.to_string(), vec![path.to_path_buf()])]);
    }
    if is_datasets_folder(path) {
        bail!("{name} is a folder written by datasets' save_to_disk (Arrow files), not Parquet");
    }
    let files = parquet_files(path);
    if files.is_empty() {
        bail!("{name} holds no .parquet files");
    }
    let mut splits: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for file in &files {
        let Some(split) = split_of(path, file) else {
            // Not every file names a split: the folder is one table of shards.
            return Ok(vec![(None, name.to_string(), files)]);
        };
        match splits.iter_mut().find(|(s, _)| *s == split) {
            Some((_, f)) => f.push(file.clone()),
            None => splits.push((split, vec![file.clone()])),
        }
    }
    if splits.len() == 1 {
        return Ok(vec![(None, name.to_string(), files)]);
    }
    splits.sort_by_key(|(s, _)| split_rank(s));
    Ok(splits.into_iter().map(|(split, files)| (Some(split.clone()), format!("{} ({split})", path.display()), files)).collect())
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn is_glob(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// Whether a folder was written by `save_to_disk` (a dataset or a `DatasetDict`).
fn is_datasets_folder(dir: &Path) -> bool {
    ["dataset_dict.json", "state.json", "dataset_info.json"].iter().any(|f| dir.join(f).is_file())
        || std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| has_extension(&e.path(), "arrow"))
}

/// The Parquet files in a folder and its subfolders (a Hub dataset keeps
/// them in `data/` or in `<config>/<split>/`), sorted; hidden ones skipped.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        for path in std::fs::read_dir(&folder).into_iter().flatten().flatten().map(|e| e.path()) {
            if super::text::is_hidden(&path) {
                continue;
            }
            if path.is_dir() && depth < 3 {
                folders.push((path, depth + 1));
            } else if has_extension(&path, "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The split a Hub shard belongs to, by its name (`train-00000-of-00002.parquet`)
/// or its folder (`plain_text/test/0000.parquet`).
fn split_of(root: &Path, file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_string_lossy().to_lowercase();
    let by_name = SPLIT_ORDER.iter().find(|s| stem == **s || stem.starts_with(&format!("{s}-")) || stem.starts_with(&format!("{s}_")) || stem.starts_with(&format!("{s}.")));
    if let Some(s) = by_name {
        return Some(s.to_string());
    }
    let parent = file.parent()?.strip_prefix(root).ok()?;
    parent.components().rev().map(|c| c.as_os_str().to_string_lossy().to_lowercase()).find(|c| SPLIT_ORDER.contains(&c.as_str()))
}

/// Where a split sorts: train, validation, test, then others by name.
fn split_rank(split: &str) -> (usize, String) {
    (SPLIT_ORDER.iter().position(|s| *s == split).unwrap_or(SPLIT_ORDER.len()), split.to_string())
}

/// Reads Parquet files as one table; `source` names them in messages.
fn read_parquet(source: &str, files: &[PathBuf]) -> Result<Table> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut table: Option<Table> = None;
    for file in files {
        let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("{} is not a readable Parquet file ({e}); it may be truncated (an interrupted download) or another format", file.display());
        let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(opened).map_err(|e| unreadable(&e))?;
        let features = builder.metadata().file_metadata().key_value_metadata().and_then(|kv| kv.iter().find(|k| k.key == "huggingface").and_then(|k| k.value.clone()));
        let schema = builder.schema().clone();
        let batches = builder.build().map_err(|e| unreadable(&e))?.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| unreadable(&e))?;
        let class_names = features.map(|f| class_names_of_metadata(&f, file)).transpose()?.unwrap_or_default();
        append(&mut table, Table { source: source.to_string(), schema, batches, class_names }, file)?;
    }
    table.with_context(|| format!("{source}: no Parquet files"))
}

/// Adds a shard's rows to the table, which must have the same columns.
fn append(table: &mut Option<Table>, shard: Table, file: &Path) -> Result<()> {
    match table {
        None => *table = Some(shard),
        Some(t) => {
            let names = |s: &SchemaRef| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
            if names(&t.schema) != names(&shard.schema) {
                bail!("{} has columns {} but the files before it have {}; shards of one dataset share their columns", file.display(), names(&shard.schema).join(", "), names(&t.schema).join(", "));
            }
            t.batches.extend(shard.batches);
            if t.class_names.is_empty() {
                t.class_names = shard.class_names;
            }
        }
    }
    Ok(())
}

/// Reads Arrow IPC stream files (as `save_to_disk` writes them) as one table.
fn read_arrow_files(source: &str, files: &[PathBuf], class_names: Option<HashMap<String, Vec<String>>>) -> Result<Table> {
    let mut table: Option<Table> = None;
    for file in files {
        let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("{} is not a readable Arrow stream file ({e}); it may be truncated, or not written by datasets' save_to_disk", file.display());
        let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(opened), None).map_err(|e| unreadable(&e))?;
        let schema = reader.schema();
        let metadata_names = schema.metadata().get("huggingface").map(|f| class_names_of_metadata(f, file)).transpose()?.unwrap_or_default();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| unreadable(&e))?;
        append(&mut table, Table { source: source.to_string(), schema, batches, class_names: class_names.clone().unwrap_or(metadata_names) }, file)?;
    }
    table.with_context(|| format!("{source}: no Arrow files"))
}

/// Reads a folder `save_to_disk` wrote: a `DatasetDict` (one subfolder per
/// split, named in `dataset_dict.json`) or one dataset.
fn read_datasets_folder(dir: &Path) -> Result<Columnar> {
    let dict_file = dir.join("dataset_dict.json");
    if dict_file.is_file() {
        let tables = dict_splits(&dict_file)?.into_iter().map(|split| Ok((split.clone(), read_saved_dataset(&dir.join(&split))?))).collect::<Result<Vec<_>>>()?;
        return Ok(Columnar::Splits(tables));
    }
    Ok(Columnar::One(read_saved_dataset(dir)?))
}

/// Reads one dataset folder: `state.json` lists its Arrow files,
/// `dataset_info.json` gives its features.
fn read_saved_dataset(dir: &Path) -> Result<Table> {
    let (files, class_names) = saved_dataset_files(dir)?;
    read_arrow_files(&dir.display().to_string(), &files, Some(class_names))
}

/// A dataset folder's Arrow files (as `state.json` lists them) and the
/// class names of its features (from `dataset_info.json`).
fn saved_dataset_files(dir: &Path) -> Result<(Vec<PathBuf>, HashMap<String, Vec<String>>)> {
    if !dir.is_dir() {
        bail!("{} is missing: dataset_dict.json lists it as a split; save the DatasetDict again with save_to_disk", dir.display());
    }
    let (info_file, state_file) = (dir.join("dataset_info.json"), dir.join("state.json"));
    for (file, what) in [(&info_file, "the features"), (&state_file, "the list of its Arrow files")] {
        if !file.is_file() {
            bail!("{} is missing: a folder written by datasets' save_to_disk has it ({what}); copy the whole folder, or save the dataset again with dataset.save_to_disk(\"{}\")", file.display(), dir.display());
        }
    }
    let info = read_json(&info_file)?;
    let class_names = info.get("features").map(|f| class_names_of_features(f, &info_file)).transpose()?.unwrap_or_default();
    let state = read_json(&state_file)?;
    let files: Vec<PathBuf> = state
        .get("_data_files")
        .and_then(Json::as_array)
        .map(|files| files.iter().filter_map(|f| f.get("filename").and_then(Json::as_str)).map(|f| dir.join(f)).collect())
        .with_context(|| format!("{}: no \"_data_files\" list naming the Arrow files", state_file.display()))?;
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        bail!("{} is missing: {} lists it; copy the whole folder", missing.display(), state_file.display());
    }
    Ok((files, class_names))
}

/// The Arrow files of a folder `save_to_disk` wrote, one part per split of
/// a `DatasetDict`: (split, the part's name, its files, its class names).
pub fn arrow_parts(name: &str) -> Result<Vec<(Option<String>, String, Vec<PathBuf>, HashMap<String, Vec<String>>)>> {
    let dir = Path::new(name);
    let dict_file = dir.join("dataset_dict.json");
    if !dict_file.is_file() {
        let (files, class_names) = saved_dataset_files(dir)?;
        return Ok(vec![(None, name.to_string(), files, class_names)]);
    }
    dict_splits(&dict_file)?
        .into_iter()
        .map(|split| {
            let (files, class_names) = saved_dataset_files(&dir.join(&split))?;
            Ok((Some(split.clone()), dir.join(&split).display().to_string(), files, class_names))
        })
        .collect()
}

/// The splits a `dataset_dict.json` lists.
fn dict_splits(dict_file: &Path) -> Result<Vec<String>> {
    let dict: Json = read_json(dict_file)?;
    let splits: Vec<String> = dict.get("splits").and_then(Json::as_array).map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).with_context(|| format!("{}: no \"splits\" list", dict_file.display()))?;
    if splits.is_empty() {
        bail!("{}: the \"splits\" list is empty", dict_file.display());
    }
    Ok(splits)
}

/// Whether a source is a folder `save_to_disk` wrote.
pub fn is_saved_dataset(name: &str) -> bool {
    !is_glob(name) && Path::new(name).is_dir() && is_datasets_folder(Path::new(name))
}

fn read_json(file: &Path) -> Result<Json> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))
}

/// Class names from a file's `huggingface` metadata (`{"info": {"features": ...}}`).
pub(super) fn class_names_of_metadata(metadata: &str, file: &Path) -> Result<HashMap<String, Vec<String>>> {
    let value: Json = serde_json::from_str(metadata).with_context(|| format!("{}: its huggingface metadata is not valid JSON", file.display()))?;
    match value.get("info").and_then(|i| i.get("features")) {
        Some(features) => class_names_of_features(features, file),
        None => Ok(HashMap::new()),
    }
}

/// The class names of each `ClassLabel` column (also inside a `Sequence`
/// or `List`, as token tags and multi-label columns are) of a features map.
fn class_names_of_features(features: &Json, file: &Path) -> Result<HashMap<String, Vec<String>>> {
    let features = features.as_object().with_context(|| format!("{}: \"features\" is not a map of columns", file.display()))?;
    Ok(features.iter().filter_map(|(column, f)| class_label_names(f).map(|names| (column.clone(), names))).collect())
}

fn class_label_names(feature: &Json) -> Option<Vec<String>> {
    match feature {
        // Older datasets write a list feature as a one-element array.
        Json::Array(items) if items.len() == 1 => class_label_names(&items[0]),
        Json::Object(f) => match f.get("_type").and_then(Json::as_str)? {
            "ClassLabel" => f.get("names")?.as_array().map(|n| n.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect()),
            "Sequence" | "List" | "LargeList" => class_label_names(f.get("feature")?),
            _ => None,
        },
        _ => None,
    }
}

/// How a column's type reads in messages: `string`, `int64`, `list<string>`.
fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::ListView(f) | DataType::LargeListView(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::Struct(fields) => format!("struct<{}>", fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")),
        DataType::Dictionary(_, values) => type_name(values),
        other => other.to_string().to_lowercase(),
    }
}

/// Whether values of this type read as text (strings, or lists of words).
fn is_text(dt: &DataType, words_allowed: bool) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, v) => is_text(v, false),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) if words_allowed => is_text(f.data_type(), false),
        _ => false,
    }
}

/// Whether values of this type can be labels: strings, numbers, booleans, or lists of them.
fn is_label(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => is_label(f.data_type()) && !f.data_type().is_nested(),
        DataType::Dictionary(_, v) => is_label(v),
        dt => is_text(dt, false) || dt.is_numeric() || *dt == DataType::Boolean,
    }
}

impl Table {
    /// A table of these record batches; `class_names` by column, as the features give them.
    pub(super) fn new(source: &str, schema: SchemaRef, batches: Vec<RecordBatch>, class_names: HashMap<String, Vec<String>>) -> Self {
        Self { source: source.to_string(), schema, batches, class_names }
    }

    /// One column's values as label cells (see `text::json_cell`): class
    /// names for a `ClassLabel`, lists joined by `separator`, null empty.
    pub(super) fn label_cells(&self, column: &str, separator: &str) -> Result<Vec<String>> {
        let names = self.class_names.get(column);
        let mut cells = Vec::with_capacity(self.len());
        for batch in &self.batches {
            let array = batch.column_by_name(column).with_context(|| format!("{}: no column '{column}'", self.source))?;
            for i in 0..batch.num_rows() {
                let value = json_value(array.as_ref(), i);
                let value = match names {
                    Some(names) => named_classes(value, names),
                    None => value,
                };
                cells.push(super::text::json_cell(&value, separator));
            }
        }
        Ok(cells)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column names, in the file's order.
    pub fn column_names(&self) -> Vec<&str> {
        self.schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    /// The class names of a `ClassLabel` column (or list of them), if it is one.
    pub fn class_names(&self, column: &str) -> Option<&[String]> {
        self.class_names.get(column).map(Vec::as_slice)
    }

    /// The columns with their types, for messages: `text (string), label (class label: neg, pos)`.
    pub fn describe_columns(&self) -> String {
        let each = self.schema.fields().iter().map(|f| match self.class_names.get(f.name()) {
            Some(names) => {
                let shown: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
                let more = if names.len() > 6 { format!(", ... {} in all", names.len()) } else { String::new() };
                let list = if f.data_type().is_nested() { "list of class labels" } else { "class label" };
                format!("{} ({list}: {}{more})", f.name(), shown.join(", "))
            }
            None => format!("{} ({})", f.name(), type_name(f.data_type())),
        });
        each.collect::<Vec<_>>().join(", ")
    }

    fn data_type(&self, column: &str) -> Result<&DataType> {
        match self.schema.field_with_name(column) {
            Ok(f) => Ok(f.data_type()),
            Err(_) => bail!("{}: no column '{column}'; columns: {}", self.source, self.describe_columns()),
        }
    }

    /// Refuses a text column whose values are not text (words lists only
    /// where `words_allowed`), naming its type and the columns there are.
    pub fn check_text_column(&self, column: &str, words_allowed: bool) -> Result<()> {
        let dt = self.data_type(column)?;
        if !is_text(dt, words_allowed) {
            bail!("{}: column '{column}' holds {} values, not text; name the text column with text: \"...\" (columns: {})", self.source, type_name(dt), self.describe_columns());
        }
        Ok(())
    }

    /// Refuses a label column whose values cannot be labels.
    pub fn check_label_column(&self, column: &str) -> Result<()> {
        let dt = self.data_type(column)?;
        if !is_label(dt) {
            bail!("{}: column '{column}' holds {} values, which cannot be labels (labels are strings, numbers or lists of them); name the label column with label: \"...\" (columns: {})", self.source, type_name(dt), self.describe_columns());
        }
        Ok(())
    }

    /// The rows as JSON objects holding only `columns` (each of which must
    /// exist). A `ClassLabel` value is its class name, and its -1 (no
    /// label, as a test split without labels has) null.
    pub fn rows(&self, columns: &[&str]) -> Result<Vec<Map<String, Json>>> {
        for c in columns {
            self.data_type(c)?;
        }
        let mut rows = Vec::with_capacity(self.len());
        for batch in &self.batches {
            let arrays: Vec<(&str, &dyn Array, Option<&Vec<String>>)> = columns
                .iter()
                .map(|&c| Ok((c, batch.column_by_name(c).with_context(|| format!("{}: a record batch has no column '{c}'", self.source))?.as_ref(), self.class_names.get(c))))
                .collect::<Result<_>>()?;
            for i in 0..batch.num_rows() {
                let row = arrays.iter().map(|(c, array, names)| {
                    let value = json_value(*array, i);
                    (c.to_string(), match names {
                        Some(names) => named_classes(value, names),
                        None => value,
                    })
                });
                rows.push(row.collect());
            }
        }
        Ok(rows)
    }
}

/// The dataset a table holds: labelled (or unlabelled) texts, or chat
/// examples when its columns are in one of the chat layouts.
#[derive(Debug)]
pub enum TableDataset {
    /// Texts with their labels.
    Text(TextDataset),
    /// Examples for supervised fine-tuning of a language model.
    Chat(ChatDataset),
}

/// What a columnar source loads as: one dataset, or one per split.
#[derive(Debug)]
pub enum Loaded {
    /// One dataset.
    One(TableDataset),
    /// A dataset per split, in the order they were saved.
    Splits(Vec<(String, TableDataset)>),
}

/// Loads a columnar source (see `is_columnar`) with the columns `cols`
/// names; `split` picks one split of a source that has several.
pub fn load(name: &str, cols: &CsvColumns, split: Option<&str>) -> Result<Loaded> {
    let tables = match (read(name)?, split) {
        (Columnar::One(t), None) => return Ok(Loaded::One(t.dataset(cols, None)?)),
        (Columnar::One(t), Some(s)) => bail!("{}: split: \"{s}\" picks a split, and this source has none (its rows are one table)", t.source),
        (Columnar::Splits(tables), None) => tables,
        (Columnar::Splits(tables), Some(s)) => {
            let names: Vec<String> = tables.iter().map(|(n, _)| n.clone()).collect();
            let Some((_, table)) = tables.into_iter().find(|(n, _)| n == s) else { bail!("{name} has no split '{s}'; its splits: {}", names.join(", ")) };
            return Ok(Loaded::One(table.dataset(cols, None)?));
        }
    };
    if tables.iter().all(|(_, t)| t.holds_chat()) {
        return Ok(Loaded::Splits(tables.iter().map(|(n, t)| Ok((n.clone(), TableDataset::Chat(t.chat_dataset()?)))).collect::<Result<_>>()?));
    }
    // Splits share their label names: those of a ClassLabel, else all the splits' labels in one order.
    let mut data = tables.iter().map(|(n, t)| Ok((n.clone(), t.text_dataset(cols, None)?))).collect::<Result<Vec<_>>>()?;
    let labelled = |d: &TextDataset| !matches!(d.targets, crate::data::Targets::Unlabelled(_)) && d.task() != Task::Regression;
    let class_label = tables.iter().find_map(|(_, t)| cols.resolve(&t.column_names()).labels.first().and_then(|l| t.class_names(l)).map(<[String]>::to_vec));
    let order = class_label.unwrap_or_else(|| sorted_label_names(data.iter().filter(|(_, d)| labelled(d)).flat_map(|(_, d)| d.label_names.iter().cloned()).collect()));
    for ((_, d), (_, table)) in data.iter_mut().zip(&tables) {
        if labelled(d) && d.label_names != order {
            *d = table.text_dataset(cols, Some(&order))?;
        }
    }
    Ok(Loaded::Splits(data.into_iter().map(|(n, d)| (n, TableDataset::Text(d))).collect()))
}

impl Table {
    /// The dataset the table holds: chat examples when its columns are in a chat layout, else texts.
    fn dataset(&self, cols: &CsvColumns, label_order: Option<&[String]>) -> Result<TableDataset> {
        Ok(if self.holds_chat() { TableDataset::Chat(self.chat_dataset()?) } else { TableDataset::Text(self.text_dataset(cols, label_order)?) })
    }

    /// Whether the columns are in one of the chat layouts (`chat::LAYOUTS`).
    pub fn holds_chat(&self) -> bool {
        let have = self.column_names();
        let has = |c: &str| have.contains(&c);
        has("messages") || (has("prompt") && has("completion")) || (has("instruction") && has("output"))
    }

    /// The rows as chat examples.
    pub fn chat_dataset(&self) -> Result<ChatDataset> {
        let have = self.column_names();
        let wanted: Vec<&str> = ["messages", "prompt", "completion", "instruction", "input", "output"].into_iter().filter(|c| have.contains(c)).collect();
        let examples = self
            .rows(&wanted)?
            .into_iter()
            .enumerate()
            .map(|(i, row)| Example::from_json(&Json::Object(row), &format!("{} row {}", self.source, i + 1)))
            .collect::<Result<Vec<_>>>()?;
        if examples.is_empty() {
            bail!("{} has no rows", self.source);
        }
        Ok(ChatDataset { name: self.source.clone(), examples })
    }

    /// The columns `cols` asks for, as this table has them: usual names
    /// found (`CsvColumns::resolve`), each checked for its type, and no
    /// labels when none were named and the table has only text.
    pub(super) fn columns_for(&self, cols: &CsvColumns) -> Result<CsvColumns> {
        let have = self.column_names();
        let mut cols = cols.resolve(&have);
        if cols.task != Task::Tokens && !have.contains(&cols.text.as_str()) {
            if let Some(words) = self.schema.fields().iter().find(|f| f.data_type().is_nested() && is_text(f.data_type(), true)) {
                bail!("{}: no column '{}'; columns: {}; '{}' holds lists of words: for token classification give task: \"token_classify\"", self.source, cols.text, self.describe_columns(), words.name());
            }
        }
        self.check_text_column(&cols.text, cols.task == Task::Tokens)?;
        if let Some(pair) = &cols.pair {
            self.check_text_column(pair, false)?;
        }
        let only_text = have.len() == 1 + usize::from(cols.pair.is_some());
        match cols.labels.iter().find(|l| !have.contains(&l.as_str())).cloned() {
            Some(_) if cols.labels_optional && only_text => cols.labels.clear(),
            Some(label) if cols.labels_optional => {
                bail!("{}: no column '{label}'; columns: {}; name the label column with label: \"...\", or give label: \"\" to load the rows without labels (to predict on)", self.source, self.describe_columns())
            }
            Some(label) => bail!("{}: no column '{label}'; columns: {}", self.source, self.describe_columns()),
            None => {}
        }
        for label in &cols.labels {
            self.check_label_column(label)?;
        }
        Ok(cols)
    }

    /// The rows as texts with labels, from the columns `cols` names (or
    /// Hugging Face's usual names, see `CsvColumns::resolve`). Class names
    /// follow `label_order`, else the `ClassLabel` feature's order, else
    /// sorted. A table whose labels are all missing (-1 or null: a test
    /// split with its labels withheld) loads unlabelled, for `predict`.
    pub fn text_dataset(&self, cols: &CsvColumns, label_order: Option<&[String]>) -> Result<TextDataset> {
        let cols = self.columns_for(cols)?;
        let wanted: Vec<&str> = std::iter::once(cols.text.as_str()).chain(cols.pair.as_deref()).chain(cols.labels.iter().map(String::as_str)).collect();
        let rows = self.rows(&wanted)?;
        let withheld = !cols.labels.is_empty() && rows.iter().all(|r| cols.labels.iter().all(|l| r.get(l).is_none_or(Json::is_null)));
        let order = label_order.or_else(|| cols.labels.first().and_then(|l| self.class_names(l)));
        let numbered = rows.into_iter().enumerate().map(|(i, r)| (i as u64 + 1, r)).collect();
        let source = Path::new(&self.source);
        let mut data = if withheld {
            let (raw, _, null_texts) = TextDataset::raw_json_rows(source, numbered, &CsvColumns { labels: Vec::new(), ..cols.clone() })?;
            let why = format!("every row's '{}' is missing (-1 or null, as in a test split whose labels are withheld)", cols.labels.join("', '"));
            let mut data = TextDataset::without_labels(source, raw, &why, true);
            data.note_null_texts(source, null_texts);
            data
        } else {
            TextDataset::from_json_rows(source, numbered, &cols, order)?
        };
        data.name = self.source.clone();
        data.note_empty_texts("rows");
        Ok(data)
    }
}

/// A `ClassLabel` value (or list of them) as class names; -1 and ids out of range are null.
fn named_classes(value: Json, names: &[String]) -> Json {
    match value {
        Json::Number(n) => n.as_i64().and_then(|i| usize::try_from(i).ok()).and_then(|i| names.get(i)).map_or(Json::Null, |n| Json::String(n.clone())),
        Json::Array(items) => Json::Array(items.into_iter().map(|v| named_classes(v, names)).collect()),
        other => other,
    }
}

/// One cell of an Arrow array as JSON. Types that a text dataset has no
/// use for (binary, dates, decimals) read as null; the column checks
/// refuse them by name where they are used.
fn json_value(array: &dyn Array, i: usize) -> Json {
    if array.is_null(i) {
        return Json::Null;
    }
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number);
    let list = |values: std::sync::Arc<dyn Array>| Json::Array((0..values.len()).map(|j| json_value(values.as_ref(), j)).collect());
    match array.data_type() {
        DataType::Utf8 => Json::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Json::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Json::String(array.as_string_view().value(i).to_string()),
        DataType::Boolean => Json::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::List(_) => list(array.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i)),
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(i)),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Json::Object(fields.iter().zip(s.columns()).map(|(f, c)| (f.name().clone(), json_value(c.as_ref(), i))).collect())
        }
        DataType::Dictionary(_, _) => {
            let d = array.as_any_dictionary();
            let key = d.normalized_keys()[i];
            json_value(d.values().as_ref(), key)
        }
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_grouped_by_the_split_their_name_or_folder_says() {
        let root = Path::new("/d");
        assert_eq!(split_of(root, Path::new("/d/data/train-00000-of-00002.parquet")).as_deref(), Some("train"));
        assert_eq!(split_of(root, Path::new("/d/data/validation-00000-of-00001.parquet")).as_deref(), Some("validation"));
        assert_eq!(split_of(root, Path::new("/d/plain_text/test/0000.parquet")).as_deref(), Some("test"));
        assert_eq!(split_of(root, Path::new("/d/data/part-0.parquet")), None);
        // A split name inside another word is not a split.
        assert_eq!(split_of(root, Path::new("/d/trainer.parquet")), None);
    }

    #[test]
    fn class_names_are_found_in_lists_in_both_feature_layouts() {
        let features: Json = serde_json::json!({
            "text": { "dtype": "string", "_type": "Value" },
            "label": { "names": ["neg", "pos"], "_type": "ClassLabel" },
            "ner_tags": { "feature": { "names": ["O", "B-PER"], "_type": "ClassLabel" }, "_type": "Sequence" },
            "old_tags": [{ "names": ["O", "B-LOC"], "_type": "ClassLabel" }],
        });
        let names = class_names_of_features(&features, Path::new("x")).unwrap();
        assert_eq!(names["label"], ["neg", "pos"]);
        assert_eq!(names["ner_tags"], ["O", "B-PER"]);
        assert_eq!(names["old_tags"], ["O", "B-LOC"]);
        assert!(!names.contains_key("text"));
        assert_eq!(named_classes(serde_json::json!([1, -1, 0]), &names["label"]), serde_json::json!(["pos", null, "neg"]));
    }
}
