//! Datasets: loading, cleaning, splitting, tokenizing and batching.

mod loader;
mod targets;
mod text;

pub use targets::Targets;
pub use loader::{Batch, DataLoader, LoaderOptions, TokenizedDataset};
pub use text::{CleanReport, CsvColumns, TextDataset, NAMED_DATASETS};
