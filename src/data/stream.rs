//! Parquet data larger than memory (`load_dataset(path, #{ stream: true })`).
//! The labels are read once and kept (a few bytes a row); the texts stay in
//! the files and are read a chunk of rows at a time when a batch needs them,
//! and tokenized then (`loader::StreamedTokens`), so memory stays flat
//! whatever the files' size.
//! Subsets (`take`, `split`) are lists of row numbers, kept in file order so
//! that reading goes forward through the files; a shuffled loader shuffles
//! the order of the chunks and the rows within each (as a shuffle buffer does).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::Array;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::arrow::ProjectionMask;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::columnar::Table;
use super::split::{split_with, SplitSpec};
use super::text::{CsvColumns, RawRow, TextDataset};
use super::Targets;
use crate::task::Task;

/// Rows read from a file at once: the unit of reading and of shuffling.
pub const CHUNK_ROWS: usize = 4096;

/// Chunks kept decoded (a batch can straddle two).
const CHUNKS_KEPT: usize = 2;

/// One row group of a Parquet file, or one record batch of an Arrow file.
#[derive(Debug, Clone, Copy)]
struct Group {
    file: usize,
    /// Its index among the file's row groups (Parquet).
    index: usize,
    /// Where its message starts in the file, and how long it is (Arrow).
    bytes: (u64, u64),
    /// Its first row, counted across all the files.
    first: u64,
    rows: u64,
}

/// How the files are read.
#[derive(Debug)]
enum Format {
    /// Parquet, with each file's footer read once.
    Parquet(Vec<ArrowReaderMetadata>),
    /// Arrow IPC streams (`datasets`' save_to_disk), with each file's
    /// schema message, which every batch read on its own is decoded after.
    Arrow(Vec<Vec<u8>>),
}

/// The texts of one chunk of rows.
#[derive(Debug)]
struct Chunk {
    first: u64,
    texts: Vec<String>,
    pairs: Option<Vec<String>>,
}

/// What every subset of one streamed source shares: the files, their row
/// groups, and the chunks read last.
#[derive(Debug)]
struct Files {
    paths: Vec<PathBuf>,
    format: Format,
    groups: Vec<Group>,
    /// The text and pair columns: root index and name.
    text: (usize, String),
    pair: Option<(usize, String)>,
    recent: Mutex<Vec<((usize, usize), Arc<Chunk>)>>,
}

/// A labelled (or unlabelled) text dataset whose texts stay in Parquet or Arrow files.
#[derive(Debug, Clone)]
pub struct StreamedText {
    /// Where the rows come from.
    pub name: String,
    files: Arc<Files>,
    /// The rows held, as row numbers across the files, ascending.
    rows: Arc<Vec<u64>>,
    /// One target per row held.
    pub targets: Targets,
    /// Class names by id (or label or output names).
    pub label_names: Vec<String>,
    /// What loading dropped or noticed, for the user to read.
    pub notes: Vec<String>,
}

impl StreamedText {
    /// Opens Parquet files, or the Arrow files of a `datasets` folder with
    /// the class names of its `dataset_info.json` (shards of one table),
    /// with the columns `cols` names, reading only their label columns now.
    pub fn open(source: &str, paths: &[PathBuf], class_names: Option<HashMap<String, Vec<String>>>, cols: &CsvColumns) -> Result<Self> {
        let arrow = paths.first().is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("arrow")));
        let (format, groups, schema, found_names) = if arrow { scan_arrow(paths)? } else { scan_parquet(paths)? };
        let class_names = class_names.unwrap_or(found_names);
        let first = groups.last().map_or(0, |g| g.first + g.rows);
        let shape = Table::new(source, schema.clone(), Vec::new(), class_names.clone());
        let cols = shape.columns_for(cols)?;
        if cols.task == Task::Tokens {
            bail!("{source}: stream: true reads classification, multi-label and regression data; token classification data loads without it");
        }
        let index_of = |name: &str| schema.index_of(name).with_context(|| format!("{source}: no column '{name}'"));
        let files = Files { paths: paths.to_vec(), text: (index_of(&cols.text)?, cols.text.clone()), pair: cols.pair.as_deref().map(|p| Ok::<_, anyhow::Error>((index_of(p)?, p.to_string()))).transpose()?, format, groups, recent: Mutex::new(Vec::new()) };
        let total = first as usize;
        let mut data = Self { name: source.to_string(), files: Arc::new(files), rows: Arc::new((0..first).collect()), targets: Targets::Unlabelled(total), label_names: Vec::new(), notes: Vec::new() };
        if cols.labels.is_empty() {
            data.notes.push(format!("{source}: no label column, so its {total} rows have no labels: they are for predict(model, data)"));
            return Ok(data);
        }
        let order = cols.labels.first().and_then(|l| class_names.get(l)).cloned();
        if cols.task == Task::Classify {
            data.read_classes(&schema, &cols, &class_names, order.as_deref())?;
            return Ok(data);
        }
        // Other label kinds go through the in-memory parser, a row of cells each.
        let mut columns = Vec::new();
        for label in &cols.labels {
            let mut cells = Vec::with_capacity(total);
            data.files.for_each_batch(&[schema.index_of(label)?], None, |batch| {
                cells.extend(Table::new(source, batch.schema(), vec![batch], class_names.clone()).label_cells(label, &cols.separator)?);
                Ok(())
            })?;
            columns.push(cells);
        }
        let raw: Vec<RawRow> = (0..total).map(|i| RawRow { text: String::new(), pair: None, cells: columns.iter_mut().map(|c| std::mem::take(&mut c[i])).collect(), line: i as u64 + 1 }).collect();
        drop(columns);
        let (labelled, kept) = TextDataset::from_cells_kept(std::path::Path::new(source), raw, &cols, order.as_deref())?;
        data.rows = Arc::new(kept.into_iter().map(|i| i as u64).collect());
        data.targets = labelled.targets;
        data.label_names = labelled.label_names;
        data.notes = labelled.notes;
        Ok(data)
    }

    /// Reads a class column a record batch at a time into ids (a few bytes
    /// a row, where cells would take tens): names in `order`, else sorted
    /// as `from_cells` sorts them; rows without a label dropped and said.
    fn read_classes(&mut self, schema: &arrow_schema::SchemaRef, cols: &CsvColumns, class_names: &HashMap<String, Vec<String>>, order: Option<&[String]>) -> Result<()> {
        let label = &cols.labels[0];
        let mut seen: HashMap<String, i64> = HashMap::new();
        let mut ids: Vec<i64> = Vec::with_capacity(self.rows.len());
        self.files.for_each_batch(&[schema.index_of(label)?], None, |batch| {
            for cell in Table::new(&self.name, batch.schema(), vec![batch], class_names.clone()).label_cells(label, &cols.separator)? {
                let next = seen.len() as i64;
                ids.push(if cell.is_empty() { -1 } else { *seen.entry(cell).or_insert(next) });
            }
            Ok(())
        })?;
        let names = order.map_or_else(|| super::text::sorted_label_names(seen.keys().cloned().collect()), <[String]>::to_vec);
        let position: HashMap<i64, i64> = seen.iter().filter_map(|(name, &id)| names.iter().position(|n| n == name).map(|p| (id, p as i64))).collect();
        let (mut kept, mut classes, mut missing) = (Vec::new(), Vec::new(), Vec::new());
        for (row, id) in ids.into_iter().enumerate() {
            match position.get(&id) {
                Some(&class) => {
                    kept.push(row as u64);
                    classes.push(class);
                }
                None if id == -1 => missing.push(row as u64 + 1),
                None => {}
            }
        }
        if kept.is_empty() && missing.len() == self.rows.len() {
            self.notes.push(format!("{}: every row's '{label}' is missing (-1 or null, as in a test split whose labels are withheld), so its {} rows have no labels: they are for predict(model, data)", self.name, missing.len()));
            return Ok(());
        }
        if kept.is_empty() {
            bail!("{}: no labelled rows found", self.name);
        }
        if !missing.is_empty() {
            let lines: Vec<String> = missing.iter().take(5).map(u64::to_string).collect();
            let more = if missing.len() > 5 { ", ..." } else { "" };
            self.notes.push(format!("{}: dropped {} rows without a label (lines {}{more})", self.name, missing.len(), lines.join(", ")));
        }
        self.rows = Arc::new(kept);
        self.targets = Targets::Classes(classes);
        self.label_names = names;
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// How many files the texts are read from.
    pub fn file_count(&self) -> usize {
        self.files.paths.len()
    }

    /// What the files are: `Parquet` or `Arrow`.
    pub fn file_kind(&self) -> &'static str {
        match self.files.format {
            Format::Parquet(_) => "Parquet",
            Format::Arrow(_) => "Arrow",
        }
    }

    /// What the targets are for.
    pub fn task(&self) -> Task {
        self.targets.task()
    }

    /// Rows per class (or label), in label-id order; empty for regression.
    pub fn class_counts(&self) -> Vec<(String, usize)> {
        self.targets.named_counts(&self.label_names)
    }

    /// The rows at `positions` (any order), kept in file order.
    pub fn subset(&self, positions: &[usize], part: &str) -> Self {
        let mut positions = positions.to_vec();
        positions.sort_unstable();
        Self {
            name: if part.is_empty() { self.name.clone() } else { format!("{}/{part}", self.name) },
            files: self.files.clone(),
            rows: Arc::new(positions.iter().map(|&p| self.rows[p]).collect()),
            targets: self.targets.subset(&positions),
            label_names: self.label_names.clone(),
            notes: Vec::new(),
        }
    }

    /// The same rows with other targets (the same classes in another order).
    pub fn relabelled(&self, targets: Targets, label_names: Vec<String>) -> Self {
        Self { targets, label_names, ..self.clone() }
    }

    /// The first `n` rows.
    pub fn take(&self, n: usize) -> Self {
        self.subset(&(0..n.min(self.len())).collect::<Vec<_>>(), "")
    }

    /// Train, validation and (optionally) test parts, as `spec` says; only
    /// the labels are looked at.
    pub fn split(&self, spec: &SplitSpec) -> Result<(Self, Self, Option<Self>)> {
        split_with(&self.targets, spec, |idx, part| self.subset(idx, part))
    }

    /// The texts (and second texts) of the rows at `positions`, read from the files.
    pub fn texts(&self, positions: &[usize]) -> Result<(Vec<String>, Option<Vec<String>>)> {
        let mut texts = Vec::with_capacity(positions.len());
        let mut pairs = self.files.pair.as_ref().map(|_| Vec::with_capacity(positions.len()));
        for &p in positions {
            let row = self.rows[p];
            let chunk = self.files.chunk_of(row)?;
            let at = (row - chunk.first) as usize;
            texts.push(chunk.texts[at].clone());
            if let (Some(pairs), Some(chunk_pairs)) = (pairs.as_mut(), chunk.pairs.as_ref()) {
                pairs.push(chunk_pairs[at].clone());
            }
        }
        Ok((texts, pairs))
    }

    /// All positions, shuffled for an epoch: chunks in a random order, and
    /// the rows of each chunk in a random order, so that reading stays a
    /// chunk at a time.
    pub fn shuffled_positions(&self, seed: u64) -> Vec<usize> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        let mut last = None;
        for (p, &row) in self.rows.iter().enumerate() {
            let key = self.files.chunk_key(row);
            if last != Some(key) {
                chunks.push(Vec::new());
                last = Some(key);
            }
            chunks.last_mut().expect("pushed above").push(p);
        }
        chunks.shuffle(&mut rng);
        for chunk in &mut chunks {
            chunk.shuffle(&mut rng);
        }
        chunks.concat()
    }
}

type Scanned = (Format, Vec<Group>, arrow_schema::SchemaRef, HashMap<String, Vec<String>>);

/// Refuses a shard whose columns differ from the first's.
fn check_same_columns(first: Option<&arrow_schema::SchemaRef>, schema: &arrow_schema::SchemaRef, path: &std::path::Path) -> Result<()> {
    let names = |s: &arrow_schema::SchemaRef| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    match first {
        Some(first) if names(first) != names(schema) => bail!("{} has columns {} but the files before it have {}; shards of one dataset share their columns", path.display(), names(schema).join(", "), names(first).join(", ")),
        _ => Ok(()),
    }
}

/// Reads the Parquet files' footers: row groups, schema, features.
fn scan_parquet(paths: &[PathBuf]) -> Result<Scanned> {
    let (mut metadata, mut groups, mut class_names, mut first) = (Vec::new(), Vec::new(), HashMap::new(), 0u64);
    let mut schema: Option<arrow_schema::SchemaRef> = None;
    for (file_index, path) in paths.iter().enumerate() {
        let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("{} is not a readable Parquet file ({e}); it may be truncated (an interrupted download) or another format", path.display());
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| unreadable(&e))?;
        check_same_columns(schema.as_ref(), meta.schema(), path)?;
        schema.get_or_insert_with(|| meta.schema().clone());
        if class_names.is_empty() {
            if let Some(features) = meta.metadata().file_metadata().key_value_metadata().and_then(|kv| kv.iter().find(|k| k.key == "huggingface").and_then(|k| k.value.clone())) {
                class_names = super::columnar::class_names_of_metadata(&features, path)?;
            }
        }
        for (index, group) in meta.metadata().row_groups().iter().enumerate() {
            let rows = group.num_rows() as u64;
            groups.push(Group { file: file_index, index, bytes: (0, 0), first, rows });
            first += rows;
        }
        metadata.push(meta);
    }
    let schema = schema.context("no Parquet files")?;
    Ok((Format::Parquet(metadata), groups, schema, class_names))
}

/// Counts the bytes read through it, so that each Arrow message's place in the file is known.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// Reads the Arrow stream files once through, noting where each record
/// batch's message lies (decoding only what the reader must).
fn scan_arrow(paths: &[PathBuf]) -> Result<Scanned> {
    let (mut prefixes, mut groups, mut first) = (Vec::new(), Vec::new(), 0u64);
    let mut schema: Option<arrow_schema::SchemaRef> = None;
    let mut class_names = HashMap::new();
    for (file_index, path) in paths.iter().enumerate() {
        let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("{} is not a readable Arrow stream file ({e}); it may be truncated, or not written by datasets' save_to_disk", path.display());
        let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let counting = Counting { inner: std::io::BufReader::new(file), read: read.clone() };
        let mut reader = arrow_ipc::reader::StreamReader::try_new(counting, None).map_err(|e| unreadable(&e))?;
        let file_schema = reader.schema();
        let mut prefix = vec![0u8; read.get() as usize];
        File::open(path).and_then(|f| std::io::Read::read_exact(&mut std::io::BufReader::new(f), &mut prefix)).with_context(|| format!("cannot read {}", path.display()))?;
        if file_schema.fields().iter().any(|f| matches!(f.data_type(), arrow_schema::DataType::Dictionary(_, _))) {
            bail!("{}: its dictionary-encoded columns cannot be read a batch at a time; load it without stream: true", path.display());
        }
        check_same_columns(schema.as_ref(), &file_schema, path)?;
        if class_names.is_empty() {
            if let Some(features) = file_schema.metadata().get("huggingface") {
                class_names = super::columnar::class_names_of_metadata(features, path)?;
            }
        }
        schema.get_or_insert(file_schema);
        let mut start = read.get();
        for (index, batch) in reader.by_ref().enumerate() {
            let rows = batch.map_err(|e| unreadable(&e))?.num_rows() as u64;
            groups.push(Group { file: file_index, index, bytes: (start, read.get() - start), first, rows });
            first += rows;
            start = read.get();
        }
        prefixes.push(prefix);
    }
    let schema = schema.context("no Arrow files")?;
    Ok((Format::Arrow(prefixes), groups, schema, class_names))
}

impl Files {
    /// The row group of a row and the chunk within it.
    fn chunk_key(&self, row: u64) -> (usize, usize) {
        let group = self.groups.partition_point(|g| g.first <= row) - 1;
        match self.format {
            Format::Parquet(_) => (group, ((row - self.groups[group].first) as usize) / CHUNK_ROWS),
            // A record batch is read whole (datasets writes 1,000 rows to one).
            Format::Arrow(_) => (group, 0),
        }
    }

    /// The decoded chunk holding `row`: one of the last read, or read now.
    fn chunk_of(&self, row: u64) -> Result<Arc<Chunk>> {
        let key = self.chunk_key(row);
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, chunk)) = recent.iter().find(|(k, _)| *k == key) {
            return Ok(chunk.clone());
        }
        let chunk = Arc::new(self.read_chunk(key)?);
        if recent.len() == CHUNKS_KEPT {
            recent.remove(0);
        }
        recent.push((key, chunk.clone()));
        Ok(chunk)
    }

    fn read_chunk(&self, (group, chunk): (usize, usize)) -> Result<Chunk> {
        let g = self.groups[group];
        let skip = chunk * CHUNK_ROWS;
        let take = match self.format {
            Format::Parquet(_) => CHUNK_ROWS.min(g.rows as usize - skip),
            Format::Arrow(_) => g.rows as usize,
        };
        let columns: Vec<usize> = std::iter::once(self.text.0).chain(self.pair.as_ref().map(|p| p.0)).collect();
        let mut batches = Vec::new();
        self.for_each_batch(&columns, Some((group, skip, take)), |batch| {
            batches.push(batch);
            Ok(())
        })?;
        let strings = |column: &str| -> Vec<String> {
            let mut out = Vec::with_capacity(take);
            for batch in &batches {
                let Some(array) = batch.column_by_name(column) else { continue };
                for i in 0..array.len() {
                    out.push(if array.is_null(i) { String::new() } else { text_at(array.as_ref(), i) });
                }
            }
            out
        };
        let texts = strings(&self.text.1);
        let pairs = self.pair.as_ref().map(|p| strings(&p.1));
        Ok(Chunk { first: g.first + skip as u64, texts, pairs })
    }

    /// Reads root columns `columns`, a record batch at a time: of every
    /// row group, or of `take` rows after `skip` in one row group.
    fn for_each_batch(&self, columns: &[usize], rows: Option<(usize, usize, usize)>, mut each: impl FnMut(arrow_array::RecordBatch) -> Result<()>) -> Result<()> {
        match &self.format {
            Format::Parquet(metadata) => {
                for (file_index, (path, meta)) in self.paths.iter().zip(metadata).enumerate() {
                    let groups: Vec<usize> = match rows {
                        Some((group, _, _)) if self.groups[group].file != file_index => continue,
                        Some((group, _, _)) => vec![self.groups[group].index],
                        None => (0..meta.metadata().num_row_groups()).collect(),
                    };
                    let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot read {} ({e}); was it changed or truncated since it was loaded?", path.display());
                    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                    let mask = ProjectionMask::roots(meta.parquet_schema(), columns.iter().copied());
                    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone()).with_projection(mask).with_row_groups(groups).with_batch_size(CHUNK_ROWS);
                    if let Some((_, skip, take)) = rows {
                        builder = builder.with_row_selection(RowSelection::from(vec![RowSelector::skip(skip), RowSelector::select(take)]));
                    }
                    for batch in builder.build().map_err(|e| unreadable(&e))? {
                        each(batch.map_err(|e| unreadable(&e))?)?;
                    }
                }
            }
            Format::Arrow(prefixes) => {
                let groups: Vec<usize> = match rows {
                    Some((group, _, _)) => vec![group],
                    None => (0..self.groups.len()).collect(),
                };
                for group in groups {
                    each(self.read_arrow_batch(&prefixes[self.groups[group].file], group, columns)?)?;
                }
            }
        }
        Ok(())
    }

    /// One record batch of an Arrow file, decoded on its own after the file's schema message.
    fn read_arrow_batch(&self, prefix: &[u8], group: usize, columns: &[usize]) -> Result<arrow_array::RecordBatch> {
        use std::io::{Read, Seek};
        let g = self.groups[group];
        let path = &self.paths[g.file];
        let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot read {} ({e}); was it changed or truncated since it was loaded?", path.display());
        let mut message = vec![0u8; g.bytes.1 as usize];
        let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        file.seek(std::io::SeekFrom::Start(g.bytes.0)).and_then(|_| file.read_exact(&mut message)).map_err(|e| unreadable(&e))?;
        let stream = std::io::Cursor::new(prefix).chain(std::io::Cursor::new(message));
        let mut reader = arrow_ipc::reader::StreamReader::try_new(stream, Some(columns.to_vec())).map_err(|e| unreadable(&e))?;
        match reader.next() {
            Some(batch) => batch.map_err(|e| unreadable(&e)),
            None => Err(unreadable(&"a record batch is missing")),
        }
    }
}

/// A string cell of a text column (checked to be one when the data was opened).
fn text_at(array: &dyn Array, i: usize) -> String {
    match array.data_type() {
        arrow_schema::DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
        arrow_schema::DataType::Utf8View => array.as_string_view().value(i).to_string(),
        arrow_schema::DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
        _ => String::new(),
    }
}
