//! Tokenized datasets and the loader that batches them.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{Device, Tensor};


use std::sync::Arc;

use super::augment::{TextAugment, Thesaurus};
use super::image::ImageSet;
use super::stream::StreamedText;
use super::{Targets, TextDataset};
use super::TextTokenizer;
use anyhow::{bail, Result};

/// Token ids for every row of a dataset, unpadded.
#[derive(Debug, Clone)]
pub struct TokenizedDataset {
    /// Where the rows came from.
    pub name: String,
    /// Token ids per row, with special tokens.
    pub input_ids: Vec<Vec<u32>>,
    /// Token-type ids per row.
    pub token_type_ids: Vec<Vec<u32>>,
    /// The target of each row.
    pub targets: Targets,
    /// Token data: each token's tag id, on the first token of each word,
    /// and -100 elsewhere (special tokens, later pieces of a word), as
    /// Hugging Face aligns word labels.
    pub token_labels: Option<Vec<Vec<i64>>>,
    /// Class, label or output names by id.
    pub label_names: Vec<String>,
    /// The truncation length used.
    pub max_len: usize,
    /// Id used to pad batches.
    pub pad_id: u32,
    /// Rows that were cut to `max_len`.
    pub truncated: usize,
    /// The texts as tokenized, for augmentation that re-tokenizes them.
    pub texts: Vec<String>,
    /// The second texts of sentence pairs, if any.
    pub pairs: Option<Vec<String>>,
    /// The tokenizer used, truncating to `max_len`.
    pub tokenizer: TextTokenizer,
}

impl TokenizedDataset {
    /// Tokenizes `data` for a model whose head has `head_labels`: class ids
    /// follow the head's label names, not the data's sorted ones (a head
    /// with placeholder names, `LABEL_0`..., takes the data's order).
    pub fn for_head(data: &TextDataset, tokenizer: &TextTokenizer, max_len: usize, head_labels: &[String]) -> Result<Self> {
        if crate::task::are_placeholder_labels(head_labels) {
            return Self::new(data, tokenizer, max_len);
        }
        Self::new(&data.in_label_order(head_labels)?, tokenizer, max_len)
    }

    /// Each row's length in tokens before truncation (special tokens
    /// included), to see what `max_len` cuts. Token-classification rows
    /// are split into words as tokenization split them.
    pub fn full_lengths(&self) -> Result<Vec<usize>> {
        let full = self.tokenizer.untruncated()?;
        if self.token_labels.is_some() {
            return Ok(full.encode_words_batch(&self.texts, usize::MAX / 2)?.into_iter().map(|((ids, _), _)| ids.len()).collect());
        }
        Ok(full.encode_batch_as_set(&self.texts, self.pairs.as_deref())?.into_iter().map(|(ids, _)| ids.len()).collect())
    }

    /// Tokenizes every text, truncating to `max_len` tokens.
    pub fn new(data: &TextDataset, tokenizer: &TextTokenizer, max_len: usize) -> Result<Self> {
        if max_len < 2 {
            bail!("max_len must be at least 2 (room for [CLS] and [SEP]), got {max_len}");
        }
        let (encoded, token_labels) = match &data.targets {
            Targets::Tokens(tags) => {
                let with_words = tokenizer.encode_words_batch(&data.texts, max_len)?;
                let aligned = with_words.iter().zip(tags).map(|((_, word_ids), tags)| align_word_tags(word_ids, tags)).collect();
                (with_words.into_iter().map(|(e, _)| e).collect::<Vec<_>>(), Some(aligned))
            }
            _ => match &data.pairs {
                Some(pairs) => (tokenizer.encode_pair_batch(&data.texts, pairs, max_len)?, None),
                None => (tokenizer.encode_batch(&data.texts, max_len)?, None),
            },
        };
        let truncated = encoded.iter().filter(|(ids, _)| ids.len() >= max_len).count();
        let (input_ids, token_type_ids) = encoded.into_iter().unzip();
        Ok(Self {
            name: data.name.clone(),
            input_ids,
            token_type_ids,
            targets: data.targets.clone(),
            token_labels,
            label_names: data.label_names.clone(),
            max_len,
            pad_id: tokenizer.pad_id,
            truncated,
            texts: data.texts.clone(),
            pairs: data.pairs.clone(),
            tokenizer: tokenizer.truncating(max_len)?,
        })
    }

    /// What the targets are for.
    pub fn task(&self) -> crate::task::Task {
        self.targets.task()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Label tokens (not -100) in `rows`: what a language model's loss averages over.
    pub fn label_tokens(&self, rows: &[usize]) -> usize {
        match &self.token_labels {
            Some(labels) => rows.iter().map(|&i| labels[i].iter().filter(|&&l| l != -100).count()).sum(),
            None => 0,
        }
    }

    /// Pads the chosen rows to their longest and stacks them into tensors.
    pub fn collate(&self, rows: &[usize], device: Device) -> Batch {
        let encoded: Vec<(&[u32], &[u32])> = rows.iter().map(|&i| (self.input_ids[i].as_slice(), self.token_type_ids[i].as_slice())).collect();
        self.collate_encoded(rows, &encoded, device)
    }

    /// As `collate`, with the rows' (first) texts replaced by `texts`
    /// (augmented copies), tokenized now. Not for token data, whose tags
    /// follow words.
    pub fn collate_texts(&self, rows: &[usize], texts: &[String], device: Device) -> Result<Batch> {
        let pairs: Option<Vec<String>> = self.pairs.as_ref().map(|p| rows.iter().map(|&i| p[i].clone()).collect());
        let encoded = self.tokenizer.encode_batch_as_set(texts, pairs.as_deref())?;
        let slices: Vec<(&[u32], &[u32])> = encoded.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
        Ok(self.collate_encoded(rows, &slices, device))
    }

    /// Concatenates each group of rows into one packed row and pads those:
    /// the attention mask numbers each row's tokens by its place in the
    /// group (1, 2, ...), which the language model reads as "attend within
    /// the same number only, from position 0". Labels are already shifted
    /// within each row (its last is -100), so no row learns the next one's
    /// first token. `size` counts the examples.
    pub fn collate_packed(&self, groups: &[Vec<usize>], device: Device) -> Batch {
        let width = groups.iter().map(|g| g.iter().map(|&i| self.input_ids[i].len()).sum::<usize>()).max().unwrap_or(0);
        let n = groups.len();
        let mut ids = vec![self.pad_id as i64; n * width];
        let mut mask = vec![0i64; n * width];
        let mut labels = vec![-100i64; n * width];
        let aligned = self.token_labels.as_ref();
        for (r, group) in groups.iter().enumerate() {
            let mut c = r * width;
            for (segment, &i) in group.iter().enumerate() {
                for (k, &id) in self.input_ids[i].iter().enumerate() {
                    ids[c] = id as i64;
                    mask[c] = segment as i64 + 1;
                    if let Some(l) = aligned.and_then(|a| a[i].get(k)) {
                        labels[c] = *l;
                    }
                    c += 1;
                }
            }
        }
        let shape = [n as i64, width as i64];
        let to = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        Batch {
            inputs: Inputs::Text { input_ids: to(&ids), token_type_ids: Tensor::zeros(shape, (tch::Kind::Int64, device)), attention_mask: to(&mask) },
            labels: to(&labels),
            size: groups.iter().map(Vec::len).sum(),
        }
    }

    /// Pads the rows' token ids (`encoded`, one per row) into a batch with
    /// the rows' targets.
    fn collate_encoded(&self, rows: &[usize], encoded: &[(&[u32], &[u32])], device: Device) -> Batch {
        let width = encoded.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let n = rows.len();
        let mut ids = vec![self.pad_id as i64; n * width];
        let mut types = vec![0i64; n * width];
        let mut mask = vec![0i64; n * width];
        for (r, (row_ids, row_types)) in encoded.iter().enumerate() {
            for (c, (&id, &ty)) in row_ids.iter().zip(row_types.iter()).enumerate() {
                ids[r * width + c] = id as i64;
                types[r * width + c] = ty as i64;
                mask[r * width + c] = 1;
            }
        }
        let shape = [n as i64, width as i64];
        let to = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        Batch {
            inputs: Inputs::Text { input_ids: to(&ids), token_type_ids: to(&types), attention_mask: to(&mask) },
            labels: match &self.token_labels {
                Some(aligned) => {
                    let mut labels = vec![-100i64; n * width];
                    for (r, &i) in rows.iter().enumerate() {
                        labels[r * width..r * width + aligned[i].len()].copy_from_slice(&aligned[i]);
                    }
                    to(&labels)
                }
                None => self.targets.batch(rows, device),
            },
            size: n,
        }
    }
}

/// Consecutive examples of one packed row, grouped (a batch lists its rows' examples row by row).
fn group_by_bin(examples: &[usize], bin_of: &[usize]) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for (k, &i) in examples.iter().enumerate() {
        if k == 0 || bin_of[i] != bin_of[examples[k - 1]] {
            rows.push(Vec::new());
        }
        rows.last_mut().expect("a row was just pushed").push(i);
    }
    rows
}

/// Each token's tag: the word's tag on its first token, -100 on special
/// tokens and on the word's later tokens.
fn align_word_tags(word_ids: &[Option<u32>], tags: &[i64]) -> Vec<i64> {
    let mut previous = None;
    word_ids
        .iter()
        .map(|w| {
            let first = w.is_some() && *w != previous;
            previous = *w;
            match w {
                Some(i) if first => tags.get(*i as usize).copied().unwrap_or(-100),
                _ => -100,
            }
        })
        .collect()
}

/// What a model reads from a batch.
#[derive(Debug)]
pub enum Inputs {
    /// Padded token sequences.
    Text {
        /// `[batch, seq]` token ids.
        input_ids: Tensor,
        /// `[batch, seq]` token-type ids.
        token_type_ids: Tensor,
        /// `[batch, seq]`, 1 for real tokens and 0 for padding (in packed
        /// language-model rows, each example's number: 1, 2, ...).
        attention_mask: Tensor,
    },
    /// `[batch, channels, height, width]` normalized float pixels.
    Images(Tensor),
}

impl Inputs {
    /// What kind of input this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Inputs::Text { .. } => "text",
            Inputs::Images(_) => "images",
        }
    }
}

/// One batch on a device.
#[derive(Debug)]
pub struct Batch {
    /// What the model reads.
    pub inputs: Inputs,
    /// `[batch]` class ids, or `[batch, outputs]` floats (multi-label 0/1
    /// entries, regression values).
    pub labels: Tensor,
    /// Rows in the batch.
    pub size: usize,
}

impl Batch {
    /// The batch on `device` (the same tensors where it is there already).
    /// Copies to CUDA do not block: from pinned memory they overlap the
    /// work queued before them (libtorch's pinned-memory cache keeps the
    /// host tensor until its copy has run); from pageable memory the copy
    /// is synchronous either way.
    pub fn to_device(self, device: Device) -> Batch {
        let non_blocking = device.is_cuda();
        self.map(|t| if t.device() == device { t } else { t.to_device_(device, t.kind(), non_blocking, false) })
    }

    /// The batch in page-locked host memory, for faster and non-blocking
    /// copies to a CUDA device.
    pub fn pinned(self) -> Result<Batch> {
        self.try_map(|t| crate::runtime::memory::pinned(&t))
    }

    /// Every tensor of the batch passed through `f`.
    fn map(self, f: impl Fn(Tensor) -> Tensor) -> Batch {
        match self.try_map(|t| Ok::<_, std::convert::Infallible>(f(t))) {
            Ok(batch) => batch,
            Err(never) => match never {},
        }
    }

    /// Every tensor of the batch passed through `f`, which may fail.
    fn try_map<E>(self, f: impl Fn(Tensor) -> std::result::Result<Tensor, E>) -> std::result::Result<Batch, E> {
        let inputs = match self.inputs {
            Inputs::Text { input_ids, token_type_ids, attention_mask } => Inputs::Text { input_ids: f(input_ids)?, token_type_ids: f(token_type_ids)?, attention_mask: f(attention_mask)? },
            Inputs::Images(pixels) => Inputs::Images(f(pixels)?),
        };
        Ok(Batch { inputs, labels: f(self.labels)?, size: self.size })
    }
}

/// Batches collated on a background thread, a few ahead of the one in
/// use, so that preparing data overlaps training.
pub struct Prefetch {
    rx: Option<std::sync::mpsc::Receiver<Result<Batch>>>,
    worker: Option<std::thread::JoinHandle<()>>,
    remaining: usize,
}

impl Prefetch {
    /// The next batch in order; `None` after the last. A loader thread that
    /// died is an error, never a silently shorter epoch.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        match self.rx.as_ref().map(|rx| rx.recv()) {
            Some(Ok(Ok(batch))) => {
                self.remaining -= 1;
                Ok(Some(batch))
            }
            Some(Ok(Err(e))) => bail!("the data loader could not make a batch, with {} to go: {e:#}", self.remaining),
            _ => {
                let why = self.worker.take().map(|w| w.join()).and_then(Result::err).map(|p| panic_text(p.as_ref())).unwrap_or_else(|| "it stopped".into());
                bail!("the data loader thread failed with {} batches to go: {why}", self.remaining)
            }
        }
    }
}

/// What a panic said, if it said it as text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "a panic".into())
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the channel first makes a worker blocked on a full one stop.
        self.rx.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A streamed dataset with a tokenizer: each batch's texts are read and
/// tokenized when the batch is made.
#[derive(Debug, Clone)]
pub struct StreamedTokens {
    /// The rows, with targets in the model head's label order.
    pub data: StreamedText,
    tokenizer: TextTokenizer,
    /// Longest row in tokens.
    pub max_len: usize,
}

impl StreamedTokens {
    /// Tokenizes `data` batch by batch for a head with `head_labels`
    /// (class ids follow them, as `TokenizedDataset::for_head`); the first
    /// row is tokenized now so that a bad setting shows here.
    pub fn new(data: &StreamedText, tokenizer: &TextTokenizer, max_len: usize, head_labels: &[String]) -> Result<Self> {
        let labels = TextDataset { name: data.name.clone(), targets: data.targets.clone(), label_names: data.label_names.clone(), ..Default::default() };
        let ordered = if crate::task::are_placeholder_labels(head_labels) { labels } else { labels.in_label_order(head_labels)? };
        let tokens = Self { data: data.relabelled(ordered.targets, ordered.label_names), tokenizer: tokenizer.clone(), max_len };
        if !data.is_empty() {
            tokens.tokenized(&[0])?;
        }
        Ok(tokens)
    }

    fn tokenized(&self, rows: &[usize]) -> Result<TokenizedDataset> {
        let (texts, pairs) = self.data.texts(rows)?;
        let part = TextDataset { name: self.data.name.clone(), texts, pairs, targets: self.data.targets.subset(rows), label_names: self.data.label_names.clone(), notes: Vec::new() };
        TokenizedDataset::new(&part, &self.tokenizer, self.max_len)
    }

    /// The rows at `rows` read, tokenized, padded and stacked.
    pub fn collate(&self, rows: &[usize], device: Device) -> Result<Batch> {
        let tokens = self.tokenized(rows)?;
        Ok(tokens.collate(&(0..rows.len()).collect::<Vec<_>>(), device))
    }
}

/// Batches per pool that length bucketing sorts (the larger, the less
/// padding and the less random the batches).
const BUCKET_POOL_BATCHES: usize = 50;

/// How a loader batches.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Rows per batch.
    pub batch_size: usize,
    /// Reshuffle every epoch.
    pub shuffle: bool,
    /// Seed of the shuffle (mixed with the epoch number).
    pub seed: u64,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Batch texts of similar length together (sorted within pools of 50
    /// batches, the batches then shuffled), which cuts padding.
    pub bucket: bool,
    /// Language-model data only: pack several examples into each row of
    /// `max_len` tokens (see `Packing`); a batch is then `batch_size` packed rows.
    pub packing: bool,
}

impl Default for LoaderOptions {
    /// Batches of 16 in order, nothing dropped, bucketed or packed.
    fn default() -> Self {
        Self { batch_size: 16, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false }
    }
}

/// Examples packed into rows of at most `capacity` tokens, decided once
/// when the loader is made (best-fit decreasing, as TRL's `bfd` packing) so
/// that every epoch has the same rows; the rows' order is shuffled per
/// epoch. In a packed row each example keeps its own positions (from 0) and
/// attends only to itself: the attention mask holds each token's example
/// number (1, 2, ...) instead of 1, and 0 for padding.
#[derive(Debug, Clone)]
pub struct Packing {
    /// The examples of each packed row, in dataset order within a row.
    pub bins: Vec<Vec<usize>>,
    /// Which packed row each example is in.
    pub bin_of: Vec<usize>,
    /// Tokens per packed row at most.
    pub capacity: usize,
}

impl Packing {
    /// Packs examples of `lengths` tokens into rows of at most `capacity`:
    /// longest first, each into the fullest row it still fits.
    pub fn best_fit(lengths: &[usize], capacity: usize) -> Self {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        // (room left, row) for every row; the first at or above a length is the best fit.
        let mut room: std::collections::BTreeSet<(usize, usize)> = std::collections::BTreeSet::new();
        let mut bins: Vec<Vec<usize>> = Vec::new();
        let mut bin_of = vec![0; lengths.len()];
        for i in order {
            let len = lengths[i].min(capacity);
            let row = match room.range((len, 0)..).next().copied() {
                Some((left, row)) => {
                    room.remove(&(left, row));
                    room.insert((left - len, row));
                    row
                }
                None => {
                    bins.push(Vec::new());
                    room.insert((capacity - len, bins.len() - 1));
                    bins.len() - 1
                }
            };
            bins[row].push(i);
            bin_of[i] = row;
        }
        for bin in &mut bins {
            bin.sort_unstable();
        }
        Self { bins, bin_of, capacity }
    }
}

/// What a loader batches.
#[derive(Debug, Clone)]
pub enum LoaderSource {
    /// Tokenized texts, padded per batch to their longest row.
    Text(Arc<TokenizedDataset>),
    /// Images with their normalization and augmentation.
    Images(Arc<ImageSet>),
    /// Texts read from Parquet files and tokenized batch by batch.
    Streamed(Arc<StreamedTokens>),
}

/// Batches of a dataset on a device.
#[derive(Debug, Clone)]
pub struct DataLoader {
    /// The rows.
    pub source: LoaderSource,
    /// How to batch them.
    pub options: LoaderOptions,
    /// EDA augmentation of training texts, drawn afresh each epoch.
    pub text_augment: Option<(TextAugment, Arc<Thesaurus>)>,
    /// The packed rows, when `options.packing`.
    pub packing: Option<Arc<Packing>>,
}

impl DataLoader {
    /// A loader over tokenized texts.
    pub fn new(data: Arc<TokenizedDataset>, options: LoaderOptions) -> Result<Self> {
        Self::over(LoaderSource::Text(data), options)
    }

    /// A loader over any source.
    pub fn over(source: LoaderSource, options: LoaderOptions) -> Result<Self> {
        let mut loader = Self { source, options, text_augment: None, packing: None };
        if loader.options.batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        if loader.rows() == 0 {
            bail!("cannot batch an empty dataset");
        }
        if matches!(loader.source, LoaderSource::Streamed(_)) && (loader.options.bucket || loader.options.packing) {
            bail!("bucket and packing arrange rows by their length in tokens, which needs every text tokenized first; a streamed dataset is read and tokenized a batch at a time (load it without stream: true to use them)");
        }
        if loader.options.packing {
            let LoaderSource::Text(t) = &loader.source else { bail!("packing is for language-model text; images all have one size") };
            if t.task() != crate::task::Task::NextToken {
                bail!("packing is for language-model data (tokenized for a language model), whose examples can share a row; a classifier reads one text per row (use bucket: true to cut padding)");
            }
            if loader.options.bucket {
                bail!("bucket and packing both cut padding; give one of them (packing leaves almost none)");
            }
            let lengths: Vec<usize> = t.input_ids.iter().map(Vec::len).collect();
            loader.packing = Some(Arc::new(Packing::best_fit(&lengths, t.max_len)));
        }
        Ok(loader)
    }

    /// The targets of every row.
    pub fn targets(&self) -> &Targets {
        match &self.source {
            LoaderSource::Text(t) => &t.targets,
            LoaderSource::Images(i) => &i.data.targets,
            LoaderSource::Streamed(s) => &s.data.targets,
        }
    }

    /// Class, label or output names by id.
    pub fn label_names(&self) -> &[String] {
        match &self.source {
            LoaderSource::Text(t) => &t.label_names,
            LoaderSource::Images(i) => &i.data.label_names,
            LoaderSource::Streamed(s) => &s.data.label_names,
        }
    }

    /// What the targets are for.
    pub fn task(&self) -> crate::task::Task {
        self.targets().task()
    }

    /// What a batch of `rows` weighs in an accumulated step: its rows, or
    /// for language-model data its label tokens.
    pub fn loss_weight(&self, rows: &[usize]) -> f64 {
        match &self.source {
            LoaderSource::Text(t) if t.task() == crate::task::Task::NextToken => t.label_tokens(rows) as f64,
            _ => rows.len() as f64,
        }
    }

    /// Rows in the data.
    pub fn rows(&self) -> usize {
        self.targets().len()
    }

    /// Where the rows came from.
    pub fn name(&self) -> &str {
        match &self.source {
            LoaderSource::Text(t) => &t.name,
            LoaderSource::Images(i) => &i.data.name,
            LoaderSource::Streamed(s) => &s.data.name,
        }
    }

    /// The seed of `epoch`'s augmentation (each row's draw also mixes in its index).
    pub fn augment_seed(&self, epoch: usize) -> u64 {
        self.options.seed.wrapping_add((epoch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D))
    }

    /// The batch of `rows` on `device`. `epoch` (training only) draws
    /// this epoch's augmentation, if the loader augments.
    pub fn collate(&self, rows: &[usize], device: Device, epoch: Option<usize>) -> Result<Batch> {
        if let (Some(packing), LoaderSource::Text(t)) = (&self.packing, &self.source) {
            return Ok(t.collate_packed(&group_by_bin(rows, &packing.bin_of), device));
        }
        Ok(match &self.source {
            LoaderSource::Text(t) => match (&self.text_augment, epoch) {
                (Some((aug, thesaurus)), Some(e)) => {
                    let seed = self.augment_seed(e);
                    let texts: Vec<String> = rows
                        .iter()
                        .map(|&i| aug.augment(&t.texts[i], thesaurus, &mut rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64)))
                        .collect();
                    // The texts were tokenized once already, so this cannot fail in a new way.
                    t.collate_texts(rows, &texts, device).unwrap_or_else(|_| t.collate(rows, device))
                }
                _ => t.collate(rows, device),
            },
            LoaderSource::Images(set) => {
                let seed = epoch.map(|e| self.augment_seed(e));
                Batch { inputs: Inputs::Images(set.collate(rows, device, seed)), labels: set.data.targets.batch(rows, device), size: rows.len() }
            }
            LoaderSource::Streamed(s) => s.collate(rows, device)?,
        })
    }

    /// `rows` in words, for messages: `16 rows of up to 128 tokens`,
    /// `32 images of 96x96`.
    pub fn describe_rows(&self, rows: &[usize]) -> String {
        match &self.source {
            LoaderSource::Text(t) => format!("a batch of {} rows of up to {} tokens", rows.len(), rows.iter().map(|&i| t.input_ids[i].len()).max().unwrap_or(0)),
            LoaderSource::Images(set) => {
                let [_, h, w] = set.output_shape();
                format!("a batch of {} images of {h}x{w}", rows.len())
            }
            LoaderSource::Streamed(s) => format!("a batch of {} rows of up to {} tokens", rows.len(), s.max_len),
        }
    }

    /// The row indices of each batch of `epoch`.
    pub fn batch_indices(&self, epoch: usize) -> Vec<Vec<usize>> {
        if let Some(packing) = &self.packing {
            return self.packed_batches(packing, epoch);
        }
        let mut order: Vec<usize> = (0..self.rows()).collect();
        if self.options.shuffle {
            let seed = self.options.seed.wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            match &self.source {
                // Chunk by chunk, so that the files are read a chunk at a time.
                LoaderSource::Streamed(s) => order = s.data.shuffled_positions(seed),
                _ => order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed)),
            }
        }
        let lengths = match (&self.source, self.options.bucket) {
            (LoaderSource::Text(t), true) => Some(&t.input_ids),
            _ => None,
        };
        if let Some(ids) = lengths {
            // Pools are whole batches, so only the epoch's last batch can be short.
            for pool in order.chunks_mut(self.options.batch_size * BUCKET_POOL_BATCHES) {
                pool.sort_by_key(|&i| ids[i].len());
            }
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(self.options.batch_size).map(<[usize]>::to_vec).collect();
        if self.options.drop_last && batches.last().is_some_and(|b| b.len() < self.options.batch_size) && batches.len() > 1 {
            batches.pop();
        }
        if lengths.is_some() && self.options.shuffle {
            // Sorted pools would otherwise go from short to long within each pool.
            let seed = self.options.seed.wrapping_add((epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            batches.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        batches
    }

    /// The examples of each batch of packed rows: the rows' order shuffled
    /// per epoch, `batch_size` rows a batch, each row's examples together.
    fn packed_batches(&self, packing: &Packing, epoch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..packing.bins.len()).collect();
        if self.options.shuffle {
            let seed = self.options.seed.wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(self.options.batch_size).map(|rows| rows.iter().flat_map(|&b| packing.bins[b].iter().copied()).collect()).collect();
        if self.options.drop_last && order.len() % self.options.batch_size != 0 && batches.len() > 1 {
            batches.pop();
        }
        batches
    }

    /// The batches of `batches`, in order, collated on a background thread
    /// (on the CPU) at most `ahead` batches ahead; `epoch` draws training
    /// augmentation as `collate` does. For a CUDA `target` the thread also
    /// pins each batch (page-locked memory, as PyTorch's `pin_memory=True`),
    /// so that `Batch::to_device` copies it without blocking.
    pub fn prefetch(&self, batches: Vec<Vec<usize>>, epoch: Option<usize>, ahead: usize, target: Device) -> Result<Prefetch> {
        let loader = self.clone();
        let remaining = batches.len();
        let (tx, rx) = std::sync::mpsc::sync_channel(ahead.max(1));
        let worker = std::thread::Builder::new()
            .name("tunebook-loader".into())
            .spawn(move || {
                for rows in batches {
                    let batch = loader.collate(&rows, Device::Cpu, epoch).and_then(|b| if target.is_cuda() { b.pinned() } else { Ok(b) });
                    if tx.send(batch).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot start the data loader thread: {e}"))?;
        Ok(Prefetch { rx: Some(rx), worker: Some(worker), remaining })
    }

    /// The share of token positions in `epoch`'s batches that are padding.
    pub fn padding_share(&self, epoch: usize) -> f64 {
        let LoaderSource::Text(t) = &self.source else { return 0.0 };
        let (mut padded, mut real) = (0usize, 0usize);
        if let Some(packing) = &self.packing {
            for batch in self.batch_indices(epoch) {
                let rows = group_by_bin(&batch, &packing.bin_of);
                let longest = rows.iter().map(|r| r.iter().map(|&i| t.input_ids[i].len()).sum::<usize>()).max().unwrap_or(0);
                padded += longest * rows.len();
                real += batch.iter().map(|&i| t.input_ids[i].len()).sum::<usize>();
            }
            return if padded == 0 { 0.0 } else { 1.0 - real as f64 / padded as f64 };
        }
        for batch in self.batch_indices(epoch) {
            let longest = batch.iter().map(|&i| t.input_ids[i].len()).max().unwrap_or(0);
            padded += longest * batch.len();
            real += batch.iter().map(|&i| t.input_ids[i].len()).sum::<usize>();
        }
        if padded == 0 { 0.0 } else { 1.0 - real as f64 / padded as f64 }
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.packing.as_ref().map_or(self.rows(), |p| p.bins.len());
        let bs = self.options.batch_size;
        if self.options.drop_last && n > bs { n / bs } else { n.div_ceil(bs) }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_packs_into_as_few_rows_as_the_tokens_need_and_keeps_every_example_once() {
        let lengths = [5, 4, 3, 3, 2, 2, 1, 9];
        let p = Packing::best_fit(&lengths, 8);
        // 20 tokens fit 3 rows of 8; the 9-token example (cut to 8 by tokenization) fills one.
        assert_eq!(p.bins.len(), 4, "{:?}", p.bins);
        let mut seen: Vec<usize> = p.bins.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        for (row, bin) in p.bins.iter().enumerate() {
            assert!(bin.iter().map(|&i| lengths[i].min(8)).sum::<usize>() <= 8);
            assert!(bin.iter().all(|&i| p.bin_of[i] == row));
        }
    }

    #[test]
    fn packed_examples_are_regrouped_by_row() {
        assert_eq!(group_by_bin(&[3, 0, 5, 4, 2], &[1, 9, 2, 1, 0, 0]), vec![vec![3, 0], vec![5, 4], vec![2]]);
    }
}
