//! Predictions by the head's task: the top class, every label's
//! probability, a regression's values, or each word's tag.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::encode_texts;
use crate::data::{DataLoader, TokenizedDataset};
use crate::model::{Learner, TextModel};
use crate::task::Task;

/// What the model predicts for one text.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Single-label: the top class and its probability, and every
    /// class's probability in label order.
    Class {
        /// The class's name.
        label: String,
        /// Its softmax probability.
        score: f64,
        /// Every class with its softmax probability, in label order.
        scores: Vec<(String, f64)>,
    },
    /// Multi-label: every label's sigmoid probability, in label order; a
    /// label is predicted when it is at least 0.5.
    Labels(Vec<(String, f64)>),
    /// Regression: each output's value, in output order.
    Values(Vec<(String, f64)>),
    /// Token classification: each word with its tag and the tag's
    /// probability (words past `max_len` tokens are left out).
    Tags(Vec<(String, String, f64)>),
}

/// Predictions from a head's raw outputs `[rows, labels]`, by its task.
fn predictions(task: Task, labels: &[String], outputs: &Tensor) -> Result<Vec<Prediction>> {
    let outputs = outputs.to_kind(Kind::Double).to_device(Device::Cpu);
    let named = |row: Vec<f64>| labels.iter().cloned().zip(row).collect::<Vec<_>>();
    Ok(match task {
        Task::Classify => {
            let probs = Vec::<Vec<f64>>::try_from(outputs.softmax(-1, Kind::Double))?;
            probs
                .into_iter()
                .map(|row| {
                    // The first of equal maxima, as argmax.
                    let top = row.iter().enumerate().fold(0, |best, (i, &p)| if p > row[best] { i } else { best });
                    Prediction::Class { label: labels[top].clone(), score: row[top], scores: named(row) }
                })
                .collect()
        }
        Task::MultiLabel => Vec::<Vec<f64>>::try_from(outputs.sigmoid())?.into_iter().map(|r| Prediction::Labels(named(r))).collect(),
        Task::Regression => Vec::<Vec<f64>>::try_from(outputs)?.into_iter().map(|r| Prediction::Values(named(r))).collect(),
        Task::Tokens => bail!("tagging words needs the texts: use predict(model, texts)"),
        Task::NextToken => bail!("a language model predicts text: use generate(model, prompt)"),
    })
}

/// Each word's tag and its probability, from the first token of the word.
fn predict_tags(model: &TextModel, texts: &[String], max_len: usize) -> Result<Vec<Prediction>> {
    let words: Vec<Vec<String>> = texts.iter().map(|t| t.split_whitespace().map(str::to_string).collect()).collect();
    let unlabelled = crate::data::TextDataset {
        name: "predict".into(),
        texts: words.iter().map(|w| w.join(" ")).collect(),
        pairs: None,
        targets: crate::data::Targets::Tokens(words.iter().map(|w| vec![0; w.len()]).collect()),
        label_names: model.labels.clone(),
        notes: Vec::new(),
    };
    let data = TokenizedDataset::new(&unlabelled, &model.tokenizer, max_len)?;
    let aligned = data.token_labels.clone().expect("token data is aligned");
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(texts.len());
    let rows: Vec<usize> = (0..texts.len()).collect();
    for chunk in rows.chunks(64) {
        let batch = data.collate(chunk, model.device());
        let probs = Learner::forward(model, &batch.inputs, false)?.softmax(-1, Kind::Double).to_device(Device::Cpu);
        let (p, idx) = probs.max_dim(-1, false);
        for (r, &i) in chunk.iter().enumerate() {
            let (p, idx): (Vec<f64>, Vec<i64>) = (Vec::try_from(p.get(r as i64))?, Vec::try_from(idx.get(r as i64))?);
            // Words cut off by max_len get no tag.
            let firsts = aligned[i].iter().enumerate().filter(|(_, &l)| l != -100).map(|(t, _)| t);
            out.push(Prediction::Tags(words[i].iter().zip(firsts).map(|(w, t)| (w.clone(), model.labels[idx[t] as usize].clone(), p[t])).collect()));
        }
    }
    Ok(out)
}

/// The prediction for every row of a loader, in row order (its shuffle and
/// augmentation are not used).
pub fn predict_loader(model: &dyn Learner, data: &DataLoader) -> Result<Vec<Prediction>> {
    let _guard = tch::no_grad_guard();
    let rows: Vec<usize> = (0..data.rows()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(data.options.batch_size.max(1)) {
        let batch = data.collate(chunk, model.device(), None)?;
        out.extend(predictions(model.task(), model.labels(), &model.forward(&batch.inputs, false)?)?);
    }
    Ok(out)
}

/// The prediction for each text, by the head's task.
pub fn predict(model: &TextModel, texts: &[String], max_len: usize) -> Result<Vec<Prediction>> {
    if model.task == Task::Tokens && !texts.is_empty() {
        return predict_tags(model, texts, max_len);
    }
    predict_texts(model, texts, None, max_len)
}

/// The prediction for each sentence pair (`texts[i]`, `pairs[i]`).
pub fn predict_pairs(model: &TextModel, texts: &[String], pairs: &[String], max_len: usize) -> Result<Vec<Prediction>> {
    if model.task == Task::Tokens {
        bail!("a token classifier tags the words of single texts, not pairs");
    }
    predict_texts(model, texts, Some(pairs), max_len)
}

fn predict_texts(model: &TextModel, texts: &[String], pairs: Option<&[String]>, max_len: usize) -> Result<Vec<Prediction>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let data = encode_texts(model, texts, pairs, max_len)?;
    let loader = DataLoader::new(std::sync::Arc::new(data), crate::data::LoaderOptions { batch_size: 64, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false })?;
    predict_loader(model, &loader)
}

/// An image file prepared as torchvision evaluates ImageNet models: grey
/// to RGB when the model reads colour (colour to grey for a grey model),
/// the shorter side resized to `size / 0.875` (256 for 224), the centre
/// `size` cropped; returned as shown (0-1) and as the model reads it
/// (with its normalization), both `[c, h, w]`.
pub fn prepare_image(model: &crate::model::ImageModel, file: &std::path::Path) -> Result<(Tensor, Tensor)> {
    use crate::data::transforms;
    let [c, h, w] = model.spec.input;
    let mut img = crate::data::image::read_image_file(file)?;
    if c == 3 {
        img = transforms::to_rgb(&img);
    } else if img.size()[0] == 3 && c == 1 {
        img = (img.get(0) * 0.2989 + img.get(1) * 0.587 + img.get(2) * 0.114).unsqueeze(0);
    }
    let shorter = (h.min(w) as f64 / 0.875).floor() as i64;
    let resized = transforms::resize_shorter(&img, shorter);
    let s = resized.size();
    let shown = transforms::crop(&resized, transforms::center_crop_box(s[1], s[2], [h, w])).clamp(0.0, 1.0).contiguous();
    let input = match &model.spec.normalize {
        Some((mean, std)) => {
            let shape = [mean.len() as i64, 1, 1];
            (&shown - Tensor::from_slice(mean).view(shape)) / Tensor::from_slice(std).view(shape)
        }
        None => shown.shallow_clone(),
    };
    Ok((shown, input))
}

/// The predictions of an image model for image files, each prepared by `prepare_image`.
pub fn predict_image_files(model: &crate::model::ImageModel, files: &[std::path::PathBuf]) -> Result<Vec<Prediction>> {
    let images = files.iter().map(|f| prepare_image(model, f).map(|(_, input)| input)).collect::<Result<Vec<_>>>()?;
    let _guard = tch::no_grad_guard();
    let mut out = Vec::with_capacity(files.len());
    for chunk in images.chunks(32) {
        let batch = Tensor::stack(chunk, 0).to_device(model.device());
        out.extend(predictions(model.task(), model.labels(), &model.forward(&crate::data::Inputs::Images(batch), false)?)?);
    }
    Ok(out)
}

/// Gradient-weighted class activation (Grad-CAM, Selvaraju et al. 2017)
/// over a backbone's last feature maps for one prepared `[c, h, w]` input:
/// each map weighted by the mean gradient of the class's score over it,
/// summed, kept where positive, resized to the input and scaled to 0-1.
/// `class` defaults to the predicted one; returns the map `[h, w]`, the
/// class and its probability.
pub fn grad_cam(model: &crate::model::ImageModel, input: &Tensor, class: Option<usize>) -> Result<(Tensor, usize, f64)> {
    let x = input.unsqueeze(0).to_device(model.device()).set_requires_grad(true);
    let Some((maps, logits)) = model.feature_maps_and_logits(&x) else {
        bail!("Grad-CAM weighs a backbone's last convolution maps; {} is a small {} network (use mobilenet_v2 or efficientnet_lite0)", model.name, model.spec.arch.name());
    };
    let probs = logits.softmax(-1, Kind::Float);
    let class = match class {
        Some(c) if (c as i64) < logits.size()[1] => c,
        Some(c) => bail!("class {c} is not one of the model's {} outputs", logits.size()[1]),
        None => logits.argmax(-1, false).int64_value(&[0]) as usize,
    };
    let score = logits.get(0).get(class as i64);
    let grads = Tensor::run_backward(&[&score], &[&maps], false, false);
    let weights = grads[0].mean_dim(&[2i64, 3][..], true, Kind::Float);
    let cam = (weights * maps.detach()).sum_dim_intlist(1, true, Kind::Float).relu();
    let size = input.size();
    let cam = cam.upsample_bilinear2d([size[1], size[2]], false, None, None).squeeze_dim(0).squeeze_dim(0);
    let cam = &cam / cam.max().clamp_min(1e-12);
    Ok((cam.detach().to_device(Device::Cpu), class, probs.double_value(&[0, class as i64])))
}
