//! Datasets: loading, cleaning, splitting, tokenizing and batching.

pub mod augment;
pub mod clean;
pub mod image;
mod loader;
pub mod split;
mod targets;
pub mod text;

pub use targets::Targets;
pub use loader::{Batch, DataLoader, Inputs, LoaderOptions, LoaderSource, TokenizedDataset};
pub use clean::{CleanOptions, CleanReport};
pub use text::{CsvColumns, TextDataset, NAMED_DATASETS};
