//! Tokenized datasets and the loader that batches them.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{Device, Tensor};

use super::{Targets, TextDataset};
use crate::model::TextTokenizer;
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
    /// Class, label or output names by id.
    pub label_names: Vec<String>,
    /// The truncation length used.
    pub max_len: usize,
    /// Id used to pad batches.
    pub pad_id: u32,
    /// Rows that were cut to `max_len`.
    pub truncated: usize,
}

impl TokenizedDataset {
    /// Tokenizes every text, truncating to `max_len` tokens.
    pub fn new(data: &TextDataset, tokenizer: &TextTokenizer, max_len: usize) -> Result<Self> {
        if max_len < 2 {
            bail!("max_len must be at least 2 (room for [CLS] and [SEP]), got {max_len}");
        }
        let encoded = tokenizer.encode_batch(&data.texts, max_len)?;
        let truncated = encoded.iter().filter(|(ids, _)| ids.len() >= max_len).count();
        let (input_ids, token_type_ids) = encoded.into_iter().unzip();
        Ok(Self {
            name: data.name.clone(),
            input_ids,
            token_type_ids,
            targets: data.targets.clone(),
            label_names: data.label_names.clone(),
            max_len,
            pad_id: tokenizer.pad_id,
            truncated,
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

    /// Pads the chosen rows to their longest and stacks them into tensors.
    pub fn collate(&self, rows: &[usize], device: Device) -> Batch {
        let width = rows.iter().map(|&i| self.input_ids[i].len()).max().unwrap_or(0);
        let n = rows.len();
        let mut ids = vec![self.pad_id as i64; n * width];
        let mut types = vec![0i64; n * width];
        let mut mask = vec![0i64; n * width];
        for (r, &i) in rows.iter().enumerate() {
            for (c, (&id, &ty)) in self.input_ids[i].iter().zip(&self.token_type_ids[i]).enumerate() {
                ids[r * width + c] = id as i64;
                types[r * width + c] = ty as i64;
                mask[r * width + c] = 1;
            }
        }
        let shape = [n as i64, width as i64];
        let to = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        Batch {
            inputs: Inputs::Text { input_ids: to(&ids), token_type_ids: to(&types), attention_mask: to(&mask) },
            labels: self.targets.batch(rows, device),
            size: n,
        }
    }
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
        /// `[batch, seq]`, 1 for real tokens and 0 for padding.
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
}

/// Batches of a tokenized dataset, padded per batch to its longest row.
#[derive(Debug, Clone)]
pub struct DataLoader {
    /// The rows.
    pub data: std::rc::Rc<TokenizedDataset>,
    /// How to batch them.
    pub options: LoaderOptions,
}

impl DataLoader {
    /// A loader over `data`.
    pub fn new(data: std::rc::Rc<TokenizedDataset>, options: LoaderOptions) -> Result<Self> {
        if options.batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        if data.is_empty() {
            bail!("cannot batch an empty dataset");
        }
        Ok(Self { data, options })
    }

    /// The row indices of each batch of `epoch`.
    pub fn batch_indices(&self, epoch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if self.options.shuffle {
            let seed = self.options.seed.wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(self.options.batch_size).map(<[usize]>::to_vec).collect();
        if self.options.drop_last && batches.last().is_some_and(|b| b.len() < self.options.batch_size) && batches.len() > 1 {
            batches.pop();
        }
        batches
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.data.len();
        let bs = self.options.batch_size;
        if self.options.drop_last && n > bs { n / bs } else { n.div_ceil(bs) }
    }

    /// Whether an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
