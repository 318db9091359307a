//! Gradient checkpointing (`runtime::checkpoint`): the same loss and
//! gradients as without it, with dropout replayed, with a frozen input (the
//! case that breaks a checkpoint keyed on its input alone) and under
//! autocast; the block runs twice with gradients and once without. And
//! fit with `checkpointing` trains BERT and a LoRA language model exactly
//! as without it.

mod common;

use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use tunebook::data::{DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use tunebook::model::layers::LoraConfig;
use tunebook::model::{CausalModel, Learner, LoadOptions, Pooling, TextModel};
use tunebook::runtime::checkpoint::checkpoint;
use tunebook::runtime::precision::Autocast;
use tunebook::train::{self, FitOptions, Schedule, Silent, TrainRun};

/// Two linear layers with dropout between them.
struct Block {
    first: nn::Linear,
    second: nn::Linear,
}

impl Block {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.second.forward(&self.first.forward(xs).gelu("none").dropout(0.3, true))
    }
}

/// The loss and the gradients of (input, parameters...) after one backward
/// pass, with or without the checkpoint, from the same seed.
fn run(block: &Block, params: &[Tensor], input: &Tensor, checkpointed: bool, calls: &Cell<usize>) -> (f64, Vec<Option<Tensor>>, f64) {
    tch::manual_seed(7);
    let forward = |x: &Tensor| {
        calls.set(calls.get() + 1);
        block.forward(x)
    };
    let hidden = if checkpointed { unsafe { checkpoint(input, params, forward) }.unwrap() } else { forward(input) };
    // A second block on top, so that the checkpoint's output gradient is not all ones.
    let loss = (block.forward(&hidden).tanh() * 3.0).sum(Kind::Float);
    let mut wrt: Vec<Tensor> = params.iter().map(Tensor::shallow_clone).collect();
    if input.requires_grad() {
        wrt.push(input.shallow_clone());
    }
    let grads = Tensor::run_backward(&[&loss], &wrt, false, false);
    // The random stream goes on as it would have without the checkpoint.
    let next_draw = Tensor::rand([1], (Kind::Float, Device::Cpu)).double_value(&[0]);
    (loss.double_value(&[]), grads.into_iter().map(Some).collect(), next_draw)
}

/// The block (its store keeps the weights alive), its parameters, and an
/// input that needs a gradient or not.
fn block(input_needs_grad: bool) -> (nn::VarStore, Block, Vec<Tensor>, Tensor) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let p = vs.root();
    let b = Block { first: nn::linear(&p / "first", 16, 32, Default::default()), second: nn::linear(&p / "second", 32, 16, Default::default()) };
    let params = vs.trainable_variables();
    let input = Tensor::randn([4, 8, 16], (Kind::Float, Device::Cpu)).set_requires_grad(input_needs_grad);
    (vs, b, params, input)
}

fn largest_difference(a: &[Option<Tensor>], b: &[Option<Tensor>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x.as_ref().unwrap() - y.as_ref().unwrap()).abs().max().double_value(&[])).fold(0.0, f64::max)
}

#[test]
fn checkpointed_gradients_equal_the_plain_ones_with_dropout_replayed() {
    let _serial = common::serial();
    let (_vs, block, params, input) = block(true);
    let (plain_calls, checkpointed_calls) = (Cell::new(0), Cell::new(0));
    let (loss_a, grads_a, draw_a) = run(&block, &params, &input, false, &plain_calls);
    let (loss_b, grads_b, draw_b) = run(&block, &params, &input, true, &checkpointed_calls);
    let difference = largest_difference(&grads_a, &grads_b);
    eprintln!("loss {loss_a} vs {loss_b}; largest gradient difference {difference:e}");
    assert!((loss_a - loss_b).abs() <= 1e-6, "{loss_a} vs {loss_b}");
    assert!(difference <= 1e-6, "largest gradient difference {difference}");
    assert_eq!(grads_b.len(), params.len() + 1, "the input's gradient comes back too");
    assert_eq!(draw_a, draw_b, "the random stream after the step is the same");
    assert_eq!((plain_calls.get(), checkpointed_calls.get()), (1, 2), "the block runs again in the backward pass");
}

#[test]
fn a_frozen_input_still_gives_the_blocks_parameters_their_gradients() {
    let _serial = common::serial();
    // Frozen embeddings: the block's input needs no gradient, its weights do.
    let (_vs, block, params, input) = block(false);
    let calls = Cell::new(0);
    let (_, plain, _) = run(&block, &params, &input, false, &calls);
    let (_, checkpointed, _) = run(&block, &params, &input, true, &calls);
    let difference = largest_difference(&plain, &checkpointed);
    assert!(difference <= 1e-6, "largest gradient difference {difference}");
    assert!(checkpointed.iter().all(|g| g.as_ref().is_some_and(|g| g.abs().sum(Kind::Float).double_value(&[]) > 0.0)), "every parameter got a gradient");
}

#[test]
fn the_block_runs_once_without_gradients_and_the_same_under_autocast() {
    let _serial = common::serial();
    let (_vs, block, params, input) = block(false);
    let calls = Cell::new(0);
    let out = tch::no_grad(|| unsafe { checkpoint(&input, &params, |x| { calls.set(calls.get() + 1); block.forward(x) }) }.unwrap());
    assert_eq!(calls.get(), 1);
    assert!(!out.requires_grad());
    // bf16 autocast: the recomputation runs under the forward pass's autocast.
    let under = |checkpointed: bool| {
        let autocast = Autocast::enter(Device::Cpu, Kind::BFloat16);
        tch::manual_seed(3);
        let hidden = if checkpointed { unsafe { checkpoint(&input, &params, |x| block.forward(x)) }.unwrap() } else { block.forward(&input) };
        let loss = hidden.to_kind(Kind::Float).square().sum(Kind::Float);
        // Autocast covers the forward pass only, as in fit.
        drop(autocast);
        let grads = Tensor::run_backward(&[&loss], &params, false, false);
        (hidden.kind(), grads)
    };
    let (kind_a, a) = under(false);
    let (kind_b, b) = under(true);
    assert_eq!((kind_a, kind_b), (Kind::BFloat16, Kind::BFloat16));
    let a: Vec<Option<Tensor>> = a.into_iter().map(Some).collect();
    let b: Vec<Option<Tensor>> = b.into_iter().map(Some).collect();
    let difference = largest_difference(&a, &b);
    assert!(difference == 0.0, "bf16 gradients differ by {difference}");
}

/// The largest difference between two models' parameters of the same name.
fn weight_difference(a: &dyn Learner, b: &dyn Learner) -> f64 {
    let theirs: std::collections::HashMap<String, Tensor> = b.named_parameters().into_iter().collect();
    a.named_parameters().iter().map(|(name, t)| (t - &theirs[name]).abs().max().double_value(&[])).fold(0.0, f64::max)
}

/// The largest difference between two runs' step losses.
fn loss_difference(a: &TrainRun, b: &TrainRun) -> f64 {
    assert_eq!(a.steps.len(), b.steps.len());
    a.steps.iter().zip(&b.steps).map(|(x, y)| (x.loss - y.loss).abs()).fold(0.0, f64::max)
}

/// Trains `model` for 3 AdamW steps, with or without checkpointing.
fn three_steps(model: &mut dyn Learner, data: &DataLoader, checkpointing: bool) -> TrainRun {
    let opts = FitOptions { lr: 1e-2, max_steps: Some(3), warmup: 0.0, schedule: Schedule::Constant, seed: Some(5), checkpointing, ..FitOptions::default() };
    train::fit(model, data, None, &opts, &mut Silent, &Arc::new(AtomicBool::new(false))).unwrap_or_else(|e| panic!("{e:#}"))
}

fn tiny_bert() -> TextModel {
    let dir = common::repo().join("tests/fixtures/tiny-bert");
    tch::manual_seed(0);
    TextModel::load("tiny", &dir, &LoadOptions { labels: Some(vec!["bad".into(), "good".into()]), pooling: Pooling::Mean, task: None, device: Device::Cpu, dropout: None }).unwrap()
}

fn reviews(model: &TextModel) -> DataLoader {
    let words = ["the film is good", "a great story", "fun and short", "the plot is dull", "bad actor", "long and dull"];
    let pairs: Vec<(String, String)> = (0..24).map(|i| (format!("{} {}", words[i % 6], words[(i * 5) % 6]), if i % 6 < 3 { "good" } else { "bad" }.to_string())).collect();
    let tokens = TokenizedDataset::new(&TextDataset::from_pairs("reviews", &pairs).unwrap(), &model.tokenizer, 16).unwrap();
    DataLoader::new(Arc::new(tokens), LoaderOptions { batch_size: 8, shuffle: true, seed: 3, drop_last: false, bucket: false, packing: false }).unwrap()
}

#[test]
fn a_checkpointed_bert_trains_as_the_plain_one_with_dropout_in_full_and_partial_fine_tuning() {
    let _serial = common::serial();
    // The fixture's dropout (0.1) is on: the recomputed blocks must draw the same masks.
    for top_layers in [None, Some(1)] {
        let (mut plain, mut checkpointed) = (tiny_bert(), tiny_bert());
        if let Some(n) = top_layers {
            // The head and the top layer train: the top block's input needs no gradient.
            plain.trainable_layers(n).unwrap();
            checkpointed.trainable_layers(n).unwrap();
        }
        let data = reviews(&plain);
        let a = three_steps(&mut plain, &data, false);
        let runs_before = tunebook::runtime::checkpoint::block_runs();
        let b = three_steps(&mut checkpointed, &data, true);
        // Each training step runs each checkpointed block twice; a frozen block
        // below every trainable one is not checkpointed (nothing to make again).
        let checkpointed_blocks = top_layers.unwrap_or(2) as usize;
        assert_eq!(tunebook::runtime::checkpoint::block_runs() - runs_before, 3 * 2 * checkpointed_blocks, "top layers {top_layers:?}");
        let (losses, weights) = (loss_difference(&a, &b), weight_difference(&plain, &checkpointed));
        eprintln!("top layers {top_layers:?}: losses differ by {losses:e}, weights by {weights:e}");
        assert!(losses <= 1e-6 && weights <= 1e-6, "top layers {top_layers:?}: losses differ by {losses}, weights by {weights}");
        assert!(a.steps[2].loss != a.steps[0].loss, "it trained");
    }
}

#[test]
fn a_checkpointed_lora_language_model_trains_as_the_plain_one() {
    use tunebook::data::chat::tokenize_examples;
    use tunebook::data::{ChatDataset, Example, Message, SftOptions, TrainOn};
    let _serial = common::serial();
    let dir = common::repo().join("tests/fixtures/decoders/tiny-llama");
    let with_lora = || {
        let mut model = CausalModel::load("tiny", &dir, Device::Cpu).unwrap();
        tch::manual_seed(7);
        // LoRA dropout on, and every base weight (embeddings included) frozen.
        let config = LoraConfig { r: 4, alpha: 8.0, dropout: 0.1, targets: model.default_lora_targets(), ..Default::default() };
        model.add_lora(&config).unwrap();
        model
    };
    let (mut plain, mut checkpointed) = (with_lora(), with_lora());
    let chat = |i: usize| Example::Chat(vec![Message { role: "system".into(), content: "s".into() }, Message { role: "user".into(), content: format!("q{i}") }, Message { role: "assistant".into(), content: ["red", "blue"][i % 2].into() }]);
    let data = ChatDataset { name: "colours".into(), examples: (0..8).map(chat).collect() };
    let tokens = tokenize_examples(&data, &plain, SftOptions { max_len: 64, train_on: TrainOn::Answers, drop_long: false }).unwrap().0;
    let loader = DataLoader::new(Arc::new(tokens), LoaderOptions { batch_size: 4, shuffle: false, seed: 0, drop_last: false, bucket: false, packing: false }).unwrap();
    let a = three_steps(&mut plain, &loader, false);
    let runs_before = tunebook::runtime::checkpoint::block_runs();
    let b = three_steps(&mut checkpointed, &loader, true);
    assert_eq!(tunebook::runtime::checkpoint::block_runs() - runs_before, 3 * 2 * 2, "3 steps, 2 layers, forward and again");
    let (losses, weights) = (loss_difference(&a, &b), weight_difference(&plain, &checkpointed));
    eprintln!("LoRA: losses differ by {losses:e}, weights by {weights:e}");
    assert!(losses <= 1e-6 && weights <= 1e-6, "losses differ by {losses}, weights by {weights}");
    let lora_moved = plain.named_parameters().iter().filter(|(n, _)| n.contains("lora_B")).any(|(_, t)| t.abs().max().double_value(&[]) > 0.0);
    assert!(lora_moved, "LoRA's B matrices (zero at the start) learned");
}
