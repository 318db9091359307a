//! Data preparation against training: examples per second for tokenizing
//! Rotten Tomatoes, for collating it into padded batches (plain and with
//! EDA augmentation), and for a MiniLM training step, with the share of an
//! epoch that data preparation takes.
//!
//!   cargo bench --bench data_pipeline -- [--threads N] [--steps N]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tch::Device;
use tunebook::data::augment::{TextAugment, Thesaurus};
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::{LoadOptions, TextModel, Pooling};
use tunebook::train::{self, FitOptions, Schedule};

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

/// Rows per second of one pass of `collate` over every batch of epoch 1.
fn collate_rate(loader: &DataLoader) -> f64 {
    let started = Instant::now();
    let mut rows = 0;
    for batch in loader.batch_indices(1) {
        rows += loader.collate(&batch, Device::Cpu, Some(1)).unwrap().size;
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let threads = arg("--threads").unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let steps = arg("--steps").unwrap_or(10);
    tunebook::runtime::set_threads(threads as i32);
    let cache = tunebook::runtime::cache_dir();
    let dir = tunebook::model::resolve_path("minilm", &cache)?;
    let mut model = TextModel::load("minilm", &dir, &LoadOptions { labels: Some(vec!["rotten".into(), "fresh".into()]), pooling: Pooling::Mean, task: None, device: Device::Cpu, dropout: None })?;
    let reviews = TextDataset::named("rotten_tomatoes", &cache)?.clean().0;

    let started = Instant::now();
    let tokens = Arc::new(TokenizedDataset::new(&reviews, &model.tokenizer, 64)?);
    let tokenize = reviews.len() as f64 / started.elapsed().as_secs_f64();

    let options = LoaderOptions { batch_size: 16, shuffle: true, seed: 1, drop_last: false, bucket: false, packing: false };
    let plain = DataLoader::new(tokens.clone(), options.clone())?;
    let collate = collate_rate(&plain);
    let mut augmented = DataLoader::new(tokens.clone(), options)?;
    let aug = TextAugment { synonyms: 0.1, insert: 0.1, swap: 0.1, delete: 0.1, p: 0.5 };
    augmented.text_augment = Some((aug, Thesaurus::cached(&cache)?));
    let collate_eda = collate_rate(&augmented);

    // Training steps on the first rows of the same loader.
    let few = DataLoader::new(Arc::new(TokenizedDataset::new(&reviews.take(16 * steps), &model.tokenizer, 64)?), LoaderOptions { batch_size: 16, shuffle: true, seed: 1, drop_last: false, bucket: false, packing: false })?;
    let opts = FitOptions { lr: 2e-5, epochs: 1, schedule: Schedule::Constant, warmup: 0.0, ..FitOptions::default() };
    let run = train::fit(&mut model, &few, None, &opts, &mut train::Silent, &Arc::new(AtomicBool::new(false)))?;
    let train_rate = run.samples_per_sec;

    println!("rows: {} reviews, max_len 64, batch 16, {threads} threads", reviews.len());
    println!("tokenize            {tokenize:>10.0} rows/s");
    println!("collate             {collate:>10.0} rows/s");
    println!("collate with EDA    {collate_eda:>10.0} rows/s  (p 0.5, re-tokenizing the changed texts)");
    println!("MiniLM train step   {train_rate:>10.1} rows/s");
    let share = |data_rate: f64| 100.0 * (1.0 / data_rate) / (1.0 / data_rate + 1.0 / train_rate);
    println!("share of an epoch spent preparing data: {:.3}% (tokenize once + collate), {:.3}% with EDA", share(1.0 / (1.0 / tokenize + 1.0 / collate)), share(1.0 / (1.0 / tokenize + 1.0 / collate_eda)));

    // Length bucketing: padding, and training time over the same rows, with and without.
    let long = Arc::new(TokenizedDataset::new(&reviews.shuffle(3).take(16 * steps * 4), &model.tokenizer, 128)?);
    let bucket_options = |bucket| LoaderOptions { batch_size: 16, shuffle: true, seed: 1, drop_last: false, bucket, packing: false };
    let (unsorted, bucketed) = (DataLoader::new(long.clone(), bucket_options(false))?, DataLoader::new(long, bucket_options(true))?);
    let timed = |loader: &DataLoader, model: &mut TextModel| -> anyhow::Result<f64> {
        let opts = FitOptions { lr: 2e-5, epochs: 1, max_steps: Some(steps * 4), schedule: Schedule::Constant, warmup: 0.0, ..FitOptions::default() };
        Ok(train::fit(model, loader, None, &opts, &mut train::Silent, &Arc::new(AtomicBool::new(false)))?.train_seconds)
    };
    let (plain_s, bucket_s) = (timed(&unsorted, &mut model)?, timed(&bucketed, &mut model)?);
    println!(
        "length bucketing (max_len 128, {} steps): padding {:.1}% -> {:.1}% of token positions; epoch {plain_s:.1}s -> {bucket_s:.1}s ({:.2}x)",
        steps * 4,
        100.0 * unsorted.padding_share(1),
        100.0 * bucketed.padding_share(1),
        plain_s / bucket_s
    );

    // Images: collating Fashion-MNIST with crop, flip and rotation against a
    // small CNN's training step; the loader thread overlaps the two.
    let fashion = std::sync::Arc::new(tunebook::data::image::ImageDataset::named("fashion_mnist", &cache, false)?.take(64 * steps * 2));
    let augment = tunebook::data::image::Augment { crop_padding: 2, flip: true, rotate: 10.0, ..Default::default() };
    let transform = tunebook::data::image::ImageTransform { normalize: Some(fashion.stats.clone()), augment, size: None, rgb: false };
    let set = tunebook::data::image::ImageSet { data: fashion.clone(), transform };
    let images = DataLoader::over(tunebook::data::LoaderSource::Images(Arc::new(set)), LoaderOptions { batch_size: 64, shuffle: true, seed: 1, drop_last: false, bucket: false, packing: false })?;
    let image_collate = collate_rate(&images);
    let spec = tunebook::model::ImageSpec { arch: tunebook::model::ImageArch::Cnn, input: [1, 28, 28], widths: vec![16, 32], dropout: 0.25, normalize: None };
    let mut cnn = tunebook::model::ImageModel::new("cnn", spec, fashion.label_names.clone(), tunebook::task::Task::Classify, Device::Cpu)?;
    let opts = FitOptions { lr: 2e-3, epochs: 1, schedule: Schedule::Constant, warmup: 0.0, weight_decay: 0.0, ..FitOptions::default() };
    let cnn_rate = train::fit(&mut cnn, &images, None, &opts, &mut train::Silent, &Arc::new(AtomicBool::new(false)))?.samples_per_sec;
    println!(
        "images (batch 64, crop+flip+rotate): collate {image_collate:.0} rows/s; CNN training {cnn_rate:.0} rows/s with the loader thread; collating inline would add {:.1}% to an epoch",
        100.0 * (1.0 / image_collate) / (1.0 / cnn_rate)
    );
    Ok(())
}
