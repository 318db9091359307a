//! Using a trained model: predictions for texts, pairs and loaders
//! (`predict`), sentence embeddings (`embed`), and text from a language
//! model (`generate`) and its overlap with references (`overlap`).

mod embed;
pub mod generate;
pub mod overlap;
mod predict;

pub use embed::embed;
pub use generate::{generate, text_loss, Finish, GenerateOptions, Generated, TextLoss};
pub use predict::{grad_cam, predict, predict_image_files, predict_loader, predict_pairs, prepare_image, Prediction};

use anyhow::Result;

use crate::data::TokenizedDataset;
use crate::model::TextModel;

/// Texts tokenized with the model's tokenizer, unlabelled.
fn encode_texts(model: &TextModel, texts: &[String], pairs: Option<&[String]>, max_len: usize) -> Result<TokenizedDataset> {
    let unlabelled = crate::data::TextDataset {
        name: "predict".into(),
        texts: texts.to_vec(),
        pairs: pairs.map(<[String]>::to_vec),
        targets: crate::data::Targets::Classes(vec![0; texts.len()]),
        label_names: model.labels.clone(),
        notes: Vec::new(),
    };
    TokenizedDataset::new(&unlabelled, &model.tokenizer, max_len)
}

