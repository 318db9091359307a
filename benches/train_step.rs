//! One training step of the shipped MiniLM (batch 16, up to 64 tokens,
//! AdamW, gradient clipping at 1.0, dropout on), timed through `fit`.
//! `scripts/bench` compares the step with PyTorch (benches/suite.rs); this
//! one breaks it into phases to find where the time goes.
//!
//!   cargo bench --bench train_step -- [--threads N] [--steps N] [--sgd] [--phases]
//!
//! `--sgd` times plain SGD instead of AdamW (the optimizer's share of a step);
//! `--lora` adds LoRA r=8 on query and value first;
//! `--phases` prints the time of zero_grad, forward, backward, clipping and
//! the optimizer step separately, each as `fit` does it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::Device;
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::{LoadOptions, TextModel, Pooling};
use tunebook::train::{self, FitOptions, Schedule};

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

fn main() -> anyhow::Result<()> {
    let threads = arg("--threads").unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let steps = arg("--steps").unwrap_or(20);
    tunebook::runtime::set_threads(threads as i32);
    tunebook::runtime::seed_everything(0);
    let cache = tunebook::runtime::cache_dir();
    let dir = tunebook::model::resolve_path("minilm", &cache)?;
    let mut model = TextModel::load("minilm", &dir, &LoadOptions { labels: Some(vec!["rotten".into(), "fresh".into()]), pooling: Pooling::Mean, task: None, device: Device::Cpu, dropout: None })?;
    if std::env::args().any(|a| a == "--lora") {
        let targets = model.default_lora_targets();
        model.add_lora(&tunebook::model::LoraConfig { r: 8, alpha: 16.0, dropout: 0.1, targets, ..Default::default() })?;
    }
    // The same 16 reviews in every step, as the PyTorch side does.
    let data = TextDataset::named("rotten_tomatoes", &cache)?.take(16);
    let tokens = Arc::new(TokenizedDataset::new(&data, &model.tokenizer, 64)?);
    let one_batch = DataLoader::new(tokens, LoaderOptions { batch_size: 16, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false })?;
    let method = if std::env::args().any(|a| a == "--sgd") { train::Method::Sgd { momentum: 0.0, nesterov: false } } else { train::Method::AdamW };
    let opts = |n| FitOptions { optimizer: method, lr: 2e-5, epochs: n, schedule: Schedule::Constant, warmup: 0.0, ..FitOptions::default() };
    let stop = Arc::new(AtomicBool::new(false));
    if std::env::args().any(|a| a == "--phases") {
        let batch = one_batch.collate(&(0..16).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
        let specs: Vec<train::optim::ParamSpec> = model.named_parameters().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| train::optim::ParamSpec::new(&n, t, 0.01)).collect();
        let mut opt = train::Optimizer::new(method, specs, 0.9, 0.999, 1e-8);
        let (mut fwd, mut bwd, mut zero, mut clip, mut upd) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..8 {
            // As `fit` steps: gradients come back fresh from the backward
            // pass (set-to-none), so "zero_grad" is only collecting the inputs.
            let t0 = std::time::Instant::now();
            let inputs = opt.trainable();
            let t1 = std::time::Instant::now();
            let loss = tunebook::model::Learner::forward(&model, &batch.inputs, true).unwrap().cross_entropy_for_logits(&batch.labels);
            let _ = loss.double_value(&[]);
            let t2 = std::time::Instant::now();
            let grads = tch::Tensor::run_backward(&[&loss], &inputs, false, false);
            let t3 = std::time::Instant::now();
            train::optim::clip_norm(&grads, 1.0);
            let t4 = std::time::Instant::now();
            opt.step_with(2e-5, grads);
            let t5 = std::time::Instant::now();
            if i >= 3 { zero += (t1 - t0).as_secs_f64(); fwd += (t2 - t1).as_secs_f64(); bwd += (t3 - t2).as_secs_f64(); clip += (t4 - t3).as_secs_f64(); upd += (t5 - t4).as_secs_f64(); }
        }
        println!("phases ms: zero_grad {:.1} forward {:.1} backward {:.1} clip {:.1} step {:.1}", zero * 200.0, fwd * 200.0, bwd * 200.0, clip * 200.0, upd * 200.0);
        return Ok(());
    }
    // Warm-up: allocator and thread pools.
    train::fit(&mut model, &one_batch, None, &opts(3), &mut train::Silent, &stop)?;
    let run = train::fit(&mut model, &one_batch, None, &opts(steps), &mut train::Silent, &stop)?;
    let per_step = run.train_seconds / run.steps.len() as f64;
    println!("tunebook steps_per_sec {:.4} ms_per_step {:.1} threads {threads} steps {}", 1.0 / per_step, per_step * 1e3, run.steps.len());
    Ok(())
}
