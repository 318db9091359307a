//! Tunebook's side of the side-by-side benchmarks (`scripts/bench` runs it
//! beside `benches/reference.py` and prints the ratios). Each command prints
//! one JSON line: the figure, its unit and one value per repeat.
//!
//!   cargo bench --bench suite -- COMMAND [--threads N] [--steps N] [--repeats N] [--rows N]
//!
//! Commands:
//! - `train-full`, `train-head`, `train-lora`: MiniLM sequence classification
//!   (mean pooling), batch 16, up to 64 tokens, AdamW, clipping at 1.0,
//!   dropout on, the same 16 reviews every step; samples per second.
//! - `eval`: the same batch without gradients; samples per second.
//! - `memory`: one full fine-tuning epoch over `--rows` reviews; the peak
//!   resident set size of the process (run it in a process of its own).
//! - `gemm`: fp32 2048x2048 matrix products through libtorch; GFLOP/s.
//! - `data`: tokenizing and collating Rotten Tomatoes; rows per second.
//! - `script`: the same short training run from a Rhai script and from Rust
//!   directly; seconds each.
//! - `generate`: SmolLM2-135M-Instruct from its GGUF file, fp32: seconds to
//!   load, tokens per second of `--steps` greedy new tokens (128) with the
//!   KV cache at batch 1, and seconds to the first token of a 256-token
//!   prompt.
//! - `sft`: SmolLM2 with LoRA r=16 (alpha 32) on every projection, batch 4
//!   x 256 tokens of BBC News text (every token learned, no padding), AdamW,
//!   clipping at 1.0: tokens per second over `--steps` steps, and the peak
//!   resident set size during training (the load excluded on both sides).
//! - `sft-packing`: the headline task of course lesson 11 (article start ->
//!   headline, answers only, max_len 256), batch 4, unpacked and packed:
//!   the share of padding and the real (non-padding) tokens per second.
//! - `image-train`: MobileNetV2 (ImageNet weights, a new 10-class head) at
//!   96 pixels, batch 32, AdamW, every layer training: images per second.
//! - `image-eval`: the same network in evaluation mode: images per second.
//! - `image-loader`: Fashion-MNIST through the loader at 96 pixels with
//!   random resized crops, flips and colour jitter: images per second.
//!
//! Started as ranks of a distributed run (`RANK`, `WORLD_SIZE`, ... set, as
//! `benches/run.py` does), `train-*` trains data-parallel with the same
//! global batch of 16; rank 0 prints `train_<mode>_ranks<N>` in samples
//! per second over all ranks.

use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tch::{Device, Kind, Tensor};
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::{Learner, LoadOptions, LoraConfig, TextModel, Pooling};
use tunebook::script::{QuietHost, Session, SessionSettings};
use tunebook::train::{self, FitOptions, Schedule, Silent};

const BATCH: usize = 16;
const MAX_LEN: usize = 64;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn load_minilm() -> anyhow::Result<TextModel> {
    let cache = tunebook::runtime::cache_dir();
    let dir = tunebook::model::resolve_path("minilm", &cache)?;
    TextModel::load("minilm", &dir, &LoadOptions { labels: Some(vec!["rotten".into(), "fresh".into()]), pooling: Pooling::Mean, task: None, device: Device::Cpu, dropout: None })
}

/// The first `rows` reviews as a loader of batches of 16, unshuffled.
fn reviews(model: &TextModel, rows: usize) -> anyhow::Result<DataLoader> {
    let data = TextDataset::named("rotten_tomatoes", &tunebook::runtime::cache_dir())?.take(rows);
    let tokens = Arc::new(TokenizedDataset::new(&data, &model.tokenizer, MAX_LEN)?);
    DataLoader::new(tokens, LoaderOptions { batch_size: BATCH, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false })
}

/// The first 16 reviews `steps` times over: one epoch of `steps` identical
/// batches, so that a timed run is one epoch, as in real training, and not
/// `steps` one-batch epochs with an epoch's bookkeeping each.
fn repeated_batch(model: &TextModel, steps: usize) -> anyhow::Result<DataLoader> {
    let data = TextDataset::named("rotten_tomatoes", &tunebook::runtime::cache_dir())?.take(BATCH);
    let tunebook::data::Targets::Classes(ids) = &data.targets else { anyhow::bail!("rotten_tomatoes has classes") };
    let pairs: Vec<(String, String)> = (0..BATCH * steps).map(|i| (data.texts[i % BATCH].clone(), data.label_names[ids[i % BATCH] as usize].clone())).collect();
    let tokens = Arc::new(TokenizedDataset::new(&TextDataset::from_pairs("reviews", &pairs)?, &model.tokenizer, MAX_LEN)?);
    DataLoader::new(tokens, LoaderOptions { batch_size: BATCH, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false })
}

/// AdamW at 2e-5, constant rate, clipping at 1.0, one epoch.
fn fit_options() -> FitOptions {
    FitOptions { optimizer: train::Method::AdamW, lr: 2e-5, epochs: 1, schedule: Schedule::Constant, warmup: 0.0, max_grad_norm: Some(1.0), ..FitOptions::default() }
}

fn emit(figure: &str, unit: &str, values: Vec<f64>, extra: serde_json::Value) {
    let mut line = json!({ "figure": figure, "impl": "tunebook", "unit": unit, "values": values });
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    println!("{line}");
}

/// Samples per second of `steps` training steps, `repeats` times, after a
/// warm-up; `mode` is full, head or lora, and full-bf16 is full under bf16
/// autocast.
fn train(mode: &str, steps: usize, repeats: usize) -> anyhow::Result<()> {
    let (mode, precision) = match mode {
        "full-bf16" => ("full", tunebook::runtime::precision::Precision::Bf16),
        other => (other, tunebook::runtime::precision::Precision::Fp32),
    };
    let options = FitOptions { precision, ..fit_options() };
    let mut model = load_minilm()?;
    match mode {
        "full" => {}
        "head" => drop(model.train_only(&["head".to_string()])?),
        "lora" => {
            let targets = model.default_lora_targets();
            model.add_lora(&LoraConfig { r: 8, alpha: 16.0, dropout: 0.1, targets, ..Default::default() })?;
        }
        other => anyhow::bail!("no training mode '{other}'; modes: full, head, lora"),
    }
    let batches = repeated_batch(&model, steps)?;
    let tokens = batches.collate(&(0..BATCH).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
    let (seq, lengths) = match &tokens.inputs {
        tunebook::data::Inputs::Text { input_ids, attention_mask, .. } => (input_ids.size()[1], Vec::<i64>::try_from(attention_mask.sum_dim_intlist(1, false, tch::Kind::Int64))?),
        _ => (0, Vec::new()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let warm_up = repeated_batch(&model, 3)?;
    train::fit(&mut model, &warm_up, None, &options, &mut Silent, &stop)?;
    let mut values = Vec::new();
    for _ in 0..repeats {
        let run = train::fit(&mut model, &batches, None, &options, &mut Silent, &stop)?;
        values.push((run.steps.len() * BATCH) as f64 / run.train_seconds);
    }
    let trainable: i64 = model.named_parameters().iter().filter(|(_, t)| t.requires_grad()).map(|(_, t)| t.numel() as i64).sum();
    // As reference.py names them: train_full, train_full_bf16, train_full_ranks2.
    let mut figure = format!("train_{mode}");
    if precision.name() != "fp32" {
        figure += &format!("_{}", precision.name());
    }
    if let Some(g) = tunebook::distributed::current() {
        figure += &format!("_ranks{}", g.world_size());
    }
    if tunebook::distributed::is_main_process() {
        emit(&figure, "samples/s", values, json!({ "seq_len": seq, "lengths": lengths, "batch": BATCH, "trainable_params": trainable }));
    }
    Ok(())
}

fn eval(batches: usize, repeats: usize) -> anyhow::Result<()> {
    let model = load_minilm()?;
    let one_batch = reviews(&model, BATCH)?;
    train::evaluate(&model, &one_batch)?;
    let mut values = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        for _ in 0..batches {
            train::evaluate(&model, &one_batch)?;
        }
        values.push((batches * BATCH) as f64 / started.elapsed().as_secs_f64());
    }
    emit("eval", "samples/s", values, json!({}));
    Ok(())
}

fn memory(rows: usize) -> anyhow::Result<()> {
    let mut model = load_minilm()?;
    let loader = reviews(&model, rows)?;
    tunebook::runtime::memory::reset_peak_rss();
    let stop = Arc::new(AtomicBool::new(false));
    train::fit(&mut model, &loader, None, &fit_options(), &mut Silent, &stop)?;
    let peak = tunebook::runtime::memory::peak_rss_bytes().unwrap_or(0) as f64 / 1e6;
    emit("peak_memory", "MB", vec![peak], json!({ "rows": rows }));
    Ok(())
}

fn gemm(repeats: usize) -> anyhow::Result<()> {
    let n = 2048i64;
    let (a, b) = (Tensor::randn([n, n], (Kind::Float, Device::Cpu)), Tensor::randn([n, n], (Kind::Float, Device::Cpu)));
    let _ = a.matmul(&b);
    let mut values = Vec::new();
    for _ in 0..repeats {
        let reps = 5;
        let started = Instant::now();
        for _ in 0..reps {
            let _ = a.matmul(&b);
        }
        values.push(2.0 * (n as f64).powi(3) * reps as f64 / started.elapsed().as_secs_f64() / 1e9);
    }
    emit("gemm_fp32", "GFLOP/s", values, json!({ "n": n }));
    Ok(())
}

fn data(repeats: usize) -> anyhow::Result<()> {
    let model = load_minilm()?;
    let reviews = TextDataset::named("rotten_tomatoes", &tunebook::runtime::cache_dir())?;
    let mut values = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let tokens = Arc::new(TokenizedDataset::new(&reviews, &model.tokenizer, MAX_LEN)?);
        let loader = DataLoader::new(tokens, LoaderOptions { batch_size: BATCH, shuffle: true, seed: 0, drop_last: false, bucket: false, packing: false })?;
        let mut rows = 0;
        for batch in loader.batch_indices(1) {
            rows += loader.collate(&batch, Device::Cpu, Some(1)).unwrap().size;
        }
        values.push(rows as f64 / started.elapsed().as_secs_f64());
    }
    emit("data_tokenize_collate", "rows/s", values, json!({ "rows": reviews.len() }));
    Ok(())
}

/// The same run (load, tokenize, `steps` AdamW steps) from a Rhai script and
/// from Rust, alternating so that drift hits both alike.
fn script(steps: usize, repeats: usize) -> anyhow::Result<()> {
    let source = format!(
        r#"let m = load_model("minilm", #{{ labels: ["rotten", "fresh"], pooling: "mean" }});
let rows = load_dataset("rotten_tomatoes").head({BATCH});
let all = [];
for i in 0..{steps} {{ all += rows; }}
let t = dataset(all).tokenize(m, #{{ max_len: {MAX_LEN} }}).loader(#{{ batch: {BATCH} }});
fit(m, t, #{{ optimizer: "adamw", lr: 2e-5, epochs: 1, schedule: "constant", max_grad_norm: 1.0 }});"#
    );
    let from_script = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let settings = SessionSettings {
            device: Device::Cpu,
            seed: 0,
            cache: tunebook::runtime::cache_dir(),
            stop: Arc::new(AtomicBool::new(false)),
            limits: Default::default(),
            precision: Default::default(),
        };
        let _ = Session::new(Rc::new(QuietHost), settings).eval(&source, "bench").map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(started.elapsed().as_secs_f64())
    };
    let from_rust = |steps: usize| -> anyhow::Result<f64> {
        let started = Instant::now();
        tunebook::runtime::seed_everything(0);
        let mut model = load_minilm()?;
        let loader = repeated_batch(&model, steps)?;
        train::fit(&mut model, &loader, None, &fit_options(), &mut Silent, &Arc::new(AtomicBool::new(false)))?;
        Ok(started.elapsed().as_secs_f64())
    };
    // The first run in a process pays libtorch's one-time start-up (thread
    // pools, kernels); a warm-up takes it, and the order alternates.
    from_rust(1)?;
    let (mut script_times, mut rust_times) = (Vec::new(), Vec::new());
    for i in 0..repeats {
        if i % 2 == 0 {
            script_times.push(from_script()?);
            rust_times.push(from_rust(steps)?);
        } else {
            rust_times.push(from_rust(steps)?);
            script_times.push(from_script()?);
        }
    }
    emit("script_run", "s", script_times, json!({ "steps": steps }));
    println!("{}", json!({ "figure": "script_run", "impl": "rust", "unit": "s", "values": rust_times, "steps": steps }));
    Ok(())
}

/// A prompt of exactly `n` SmolLM2 tokens: a sentence repeated, cut.
fn prompt_of(model: &tunebook::model::CausalModel, n: usize) -> anyhow::Result<Vec<i64>> {
    let text = "The history of the old city begins with a small market by the river, where traders met every morning. ".repeat(n / 10 + 1);
    let mut ids = model.encode(&text)?;
    ids.truncate(n);
    Ok(ids)
}

fn generate(new_tokens: usize, repeats: usize) -> anyhow::Result<()> {
    use tunebook::inference::{generate, GenerateOptions};
    let cache = tunebook::runtime::cache_dir();
    let path = tunebook::model::resolve_path("smollm2", &cache)?;
    let mut loads = Vec::new();
    let mut model = None;
    for _ in 0..repeats {
        let started = Instant::now();
        model = Some(tunebook::model::CausalModel::load("smollm2", &path, Device::Cpu)?);
        loads.push(started.elapsed().as_secs_f64());
    }
    let mut model = model.expect("at least one repeat");
    // Always `new_tokens`, as the reference's min_new_tokens does.
    model.config.eos_token_ids.clear();
    let short = prompt_of(&model, 8)?;
    let long = prompt_of(&model, 256)?;
    let run = |prompt: &[i64], n: usize| -> anyhow::Result<f64> {
        let opts = GenerateOptions { max_new_tokens: n, ..Default::default() };
        let started = Instant::now();
        let out = generate(&model, &[prompt.to_vec()], &opts, &mut |_, _| {}, &|| false)?;
        anyhow::ensure!(out[0].ids.len() == n, "generated {} tokens, not {n}", out[0].ids.len());
        Ok(started.elapsed().as_secs_f64())
    };
    run(&short, 2)?;
    let (mut rates, mut first) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        rates.push(new_tokens as f64 / run(&short, new_tokens)?);
        first.push(run(&long, 1)?);
    }
    emit("load_gguf", "s", loads, json!({}));
    emit("generate_tokens", "tokens/s", rates, json!({ "new_tokens": new_tokens, "prompt_tokens": short.len() }));
    emit("time_to_first_token", "s", first, json!({ "prompt_tokens": long.len() }));
    Ok(())
}

/// SmolLM2 from the bootstrap's GGUF with LoRA r=16, alpha 32, no dropout,
/// on every projection (TRL's and QLoRA's recipe).
fn smollm2_with_lora() -> anyhow::Result<tunebook::model::CausalModel> {
    let path = tunebook::model::resolve_path("smollm2", &tunebook::runtime::cache_dir())?;
    let mut model = tunebook::model::CausalModel::load("smollm2", &path, Device::Cpu)?;
    let targets = model.default_lora_targets();
    model.add_lora(&LoraConfig { r: 16, alpha: 32.0, dropout: 0.0, targets, ..Default::default() })?;
    Ok(model)
}

/// AdamW at 1e-4, constant, clipping at 1.0, one epoch (no weight decay
/// on the LoRA matrices, as PEFT recipes run them).
fn sft_options() -> FitOptions {
    FitOptions { lr: 1e-4, weight_decay: 0.0, schedule: Schedule::Constant, warmup: 0.0, epochs: 1, max_grad_norm: Some(1.0), ..FitOptions::default() }
}

/// Rows of exactly `len` tokens of BBC News text, every token learned.
fn text_rows(model: &tunebook::model::CausalModel, rows: usize, len: usize) -> anyhow::Result<Arc<TokenizedDataset>> {
    let articles = TextDataset::named("bbc_news", &tunebook::runtime::cache_dir())?;
    let texts: Vec<String> = articles.texts.iter().take(rows).map(|t| t.replace('\n', " ")).collect();
    let opts = tunebook::data::SftOptions { max_len: len, train_on: tunebook::data::TrainOn::All, drop_long: false };
    let (tokens, _) = tunebook::data::chat::tokenize_texts("bbc", &texts, model, opts)?;
    anyhow::ensure!(tokens.input_ids.iter().all(|r| r.len() == len), "every article is longer than {len} tokens");
    Ok(Arc::new(tokens))
}

fn sft(steps: usize, repeats: usize) -> anyhow::Result<()> {
    const SFT_BATCH: usize = 4;
    const SEQ: usize = 256;
    let mut model = smollm2_with_lora()?;
    let tokens = text_rows(&model, SFT_BATCH, SEQ)?;
    // The same 4 rows `steps` times: one epoch of identical batches.
    let idx: Vec<usize> = (0..SFT_BATCH * steps).map(|i| i % SFT_BATCH).collect();
    let repeated = Arc::new(TokenizedDataset {
        input_ids: idx.iter().map(|&i| tokens.input_ids[i].clone()).collect(),
        token_type_ids: idx.iter().map(|&i| tokens.token_type_ids[i].clone()).collect(),
        token_labels: tokens.token_labels.as_ref().map(|l| idx.iter().map(|&i| l[i].clone()).collect()),
        texts: idx.iter().map(|&i| tokens.texts[i].clone()).collect(),
        targets: tunebook::data::Targets::NextToken(idx.len()),
        ..(*tokens).clone()
    });
    let loader = DataLoader::new(repeated, LoaderOptions { batch_size: SFT_BATCH, ..Default::default() })?;
    let warm = DataLoader::new(tokens.clone(), LoaderOptions { batch_size: SFT_BATCH, ..Default::default() })?;
    let stop = Arc::new(AtomicBool::new(false));
    train::fit(&mut model, &warm, None, &sft_options(), &mut Silent, &stop)?;
    let (mut rates, mut peaks) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let run = train::fit(&mut model, &loader, None, &sft_options(), &mut Silent, &stop)?;
        rates.push((run.steps.len() * SFT_BATCH * SEQ) as f64 / run.train_seconds);
        peaks.push(run.peak_rss_bytes.unwrap_or(0) as f64 / 1e6);
    }
    let trainable: i64 = model.named_parameters().iter().filter(|(_, t)| t.requires_grad()).map(|(_, t)| t.numel() as i64).sum();
    emit("sft_tokens", "tokens/s", rates, json!({ "batch": SFT_BATCH, "seq_len": SEQ, "trainable_params": trainable }));
    emit("sft_peak_memory", "MB", peaks, json!({ "batch": SFT_BATCH, "seq_len": SEQ }));
    Ok(())
}

/// Lesson 11's examples: the start of each article (400 characters) asks
/// for its headline (the first line).
fn headline_examples(rows: usize) -> anyhow::Result<tunebook::data::ChatDataset> {
    use tunebook::data::{Example, Message};
    let articles = TextDataset::named("bbc_news", &tunebook::runtime::cache_dir())?;
    let examples = articles
        .texts
        .iter()
        .take(rows)
        .map(|t| {
            let (headline, body) = t.split_once('\n').unwrap_or((t, ""));
            let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(400).collect();
            Example::Chat(vec![
                Message { role: "system".into(), content: "You write news headlines.".into() },
                Message { role: "user".into(), content: format!("Headline for this article:\n{body}") },
                Message { role: "assistant".into(), content: headline.trim().into() },
            ])
        })
        .collect();
    Ok(tunebook::data::ChatDataset { name: "headlines".into(), examples })
}

fn sft_packing(steps: usize, repeats: usize) -> anyhow::Result<()> {
    let mut model = smollm2_with_lora()?;
    let examples = headline_examples(400)?;
    let opts = tunebook::data::SftOptions { max_len: 256, train_on: tunebook::data::TrainOn::Answers, drop_long: false };
    let tokens = Arc::new(tunebook::data::chat::tokenize_examples(&examples, &model, opts)?.0);
    let stop = Arc::new(AtomicBool::new(false));
    for packing in [false, true] {
        let loader = DataLoader::new(tokens.clone(), LoaderOptions { batch_size: 4, shuffle: true, seed: 1, packing, ..Default::default() })?;
        let padding = loader.padding_share(1);
        let real_per_batch: f64 = {
            let batches = loader.batch_indices(1);
            let real: usize = batches.iter().flatten().map(|&i| tokens.input_ids[i].len()).sum();
            real as f64 / batches.len() as f64
        };
        let opts = FitOptions { max_steps: Some(steps), ..sft_options() };
        train::fit(&mut model, &loader, None, &FitOptions { max_steps: Some(1), ..sft_options() }, &mut Silent, &stop)?;
        let mut rates = Vec::new();
        for _ in 0..repeats {
            let run = train::fit(&mut model, &loader, None, &opts, &mut Silent, &stop)?;
            rates.push(run.steps.len() as f64 * real_per_batch / run.train_seconds);
        }
        let name = if packing { "sft_packed" } else { "sft_unpacked" };
        emit(name, "tokens/s", rates, json!({ "padding_share": padding, "batches_per_epoch": loader.len(), "examples": tokens.len() }));
    }
    Ok(())
}

const IMAGE_BATCH: usize = 32;
const IMAGE_SIDE: i64 = 96;

/// MobileNetV2 with its ImageNet weights and a new 10-class head, for 96-pixel images.
fn mobilenet() -> anyhow::Result<tunebook::model::ImageModel> {
    use tunebook::model::{ImageArch, ImageModel};
    let path = tunebook::model::resolve_path("mobilenet_v2", &tunebook::runtime::cache_dir())?;
    let mut model = ImageModel::pretrained("mobilenet_v2", ImageArch::MobileNetV2, &path, IMAGE_SIDE, Device::Cpu)?;
    model.adapt_head((0..10).map(|i| format!("c{i}")).collect(), tunebook::model::Task::Classify)?;
    Ok(model)
}

/// Fashion-MNIST's first `rows` images as the backbone reads them: RGB at
/// 96 pixels, ImageNet's normalization, training augmentation when asked.
fn fashion_for_mobilenet(rows: usize, augment: bool) -> anyhow::Result<DataLoader> {
    use tunebook::data::image::{Augment, ImageDataset, ImageSet, ImageTransform};
    use tunebook::data::transforms::{ColorJitter, ResizedCrop};
    let data = std::sync::Arc::new(ImageDataset::named("fashion_mnist", &tunebook::runtime::cache_dir(), false)?.take(rows));
    let augment = if augment {
        Augment { flip: true, resized_crop: Some(ResizedCrop { scale: (0.6, 1.0), ..Default::default() }), color_jitter: Some(ColorJitter { brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.0 }), ..Default::default() }
    } else {
        Augment::default()
    };
    let normalize = tunebook::model::ImageArch::MobileNetV2.pretrained_normalization();
    let transform = ImageTransform::fitted(data.shape, [3, IMAGE_SIDE, IMAGE_SIDE], normalize, augment)?;
    let set = ImageSet { data, transform };
    DataLoader::over(tunebook::data::LoaderSource::Images(Arc::new(set)), LoaderOptions { batch_size: IMAGE_BATCH, ..Default::default() })
}

fn image_train(steps: usize, repeats: usize) -> anyhow::Result<()> {
    let model = mobilenet()?;
    // One batch collated once and repeated: the step, not the loader, is timed.
    let loader = fashion_for_mobilenet(IMAGE_BATCH, false)?;
    let batch = loader.collate(&(0..IMAGE_BATCH).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
    let tunebook::data::Inputs::Images(x) = &batch.inputs else { anyhow::bail!("images") };
    let repeated: Vec<Tensor> = (0..steps).map(|_| x.shallow_clone()).collect();
    let loss = train::Loss::CrossEntropy;
    // AdamW at 1e-4 with decay 0.01 on the weights, none on biases and norms, as the reference.
    let specs = model.named_parameters().into_iter().map(|(n, t)| { let wd = if t.dim() <= 1 { 0.0 } else { 0.01 }; train::optim::ParamSpec::new(&n, t, wd) }).collect();
    let mut optimizer = train::Optimizer::new(train::Method::AdamW, specs, 0.9, 0.999, 1e-8);
    let mut run_steps = |n: usize| -> f64 {
        let started = Instant::now();
        for x in repeated.iter().take(n) {
            let out = model.forward(&tunebook::data::Inputs::Images(x.shallow_clone()), true).expect("forward");
            let l = loss.compute(&out, &batch.labels, None, 0.0);
            let grads = Tensor::run_backward(&[&l], &optimizer.trainable(), false, false);
            optimizer.step_with(1e-4, grads);
        }
        started.elapsed().as_secs_f64()
    };
    run_steps(2);
    let values: Vec<f64> = (0..repeats).map(|_| (steps * IMAGE_BATCH) as f64 / run_steps(steps)).collect();
    emit("image_train", "images/s", values, json!({ "batch": IMAGE_BATCH, "side": IMAGE_SIDE }));
    Ok(())
}

fn image_eval(steps: usize, repeats: usize) -> anyhow::Result<()> {
    let model = mobilenet()?;
    let loader = fashion_for_mobilenet(IMAGE_BATCH, false)?;
    let batch = loader.collate(&(0..IMAGE_BATCH).collect::<Vec<_>>(), Device::Cpu, None).unwrap();
    let _no_grad = tch::no_grad_guard();
    let run = |n: usize| -> f64 {
        let started = Instant::now();
        for _ in 0..n {
            let _ = model.forward(&batch.inputs, false).expect("forward");
        }
        started.elapsed().as_secs_f64()
    };
    run(1);
    let values: Vec<f64> = (0..repeats).map(|_| (steps * IMAGE_BATCH) as f64 / run(steps)).collect();
    emit("image_eval", "images/s", values, json!({ "batch": IMAGE_BATCH, "side": IMAGE_SIDE }));
    Ok(())
}

fn image_loader(steps: usize, repeats: usize) -> anyhow::Result<()> {
    let loader = fashion_for_mobilenet(IMAGE_BATCH * steps, true)?;
    let mut values = Vec::new();
    for r in 0..repeats {
        let started = Instant::now();
        let mut prepared = loader.prefetch(loader.batch_indices(r), Some(r), 4, tch::Device::Cpu)?;
        let mut n = 0;
        while let Some(b) = prepared.next_batch()? {
            n += b.size;
        }
        values.push(n as f64 / started.elapsed().as_secs_f64());
    }
    emit("image_loader", "images/s", values, json!({ "batch": IMAGE_BATCH, "side": IMAGE_SIDE, "augment": "resized_crop, flip, color_jitter" }));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let command = std::env::args().skip(1).find(|a| !a.starts_with("--") && a.parse::<usize>().is_err()).unwrap_or_default();
    let threads = arg("--threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    tunebook::runtime::set_threads(threads as i32);
    tunebook::runtime::seed_everything(0);
    tunebook::distributed::init_from_env()?;
    let (steps, repeats) = (arg("--steps", 10), arg("--repeats", 5));
    match command.as_str() {
        "train-full" => train("full", steps, repeats),
        "train-head" => train("head", steps, repeats),
        "train-lora" => train("lora", steps, repeats),
        "train-full-bf16" => train("full-bf16", steps, repeats),
        "eval" => eval(steps, repeats),
        "memory" => memory(arg("--rows", 256)),
        "gemm" => gemm(repeats),
        "data" => data(repeats),
        "script" => script(steps, repeats),
        "generate" => generate(steps, repeats),
        "sft" => sft(steps, repeats),
        "sft-packing" => sft_packing(steps, repeats),
        "image-train" => image_train(steps, repeats),
        "image-eval" => image_eval(steps, repeats),
        "image-loader" => image_loader(steps, repeats),
        other => anyhow::bail!("no benchmark '{other}'; commands: train-full, train-head, train-lora, train-full-bf16, eval, memory, gemm, data, script, generate, sft, sft-packing, image-train, image-eval, image-loader"),
    }
}
