//! Building blocks shared by the architectures: the linear layer that can
//! carry a LoRA update (`Dense`), Houlsby bottleneck adapters, attention
//! and activations.
//!
//! Names follow PEFT's: a LoRA on `encoder.layer.0.attention.self.query`
//! adds `...query.lora_A.weight` (`[r, in]`) and `...query.lora_B.weight`
//! (`[out, r]`), and with DoRA `...query.lora_magnitude_vector` (`[out]`);
//! the layer computes `W x + b + s B A dropout(x)` with `s = alpha / r`
//! (`alpha / sqrt(r)` with rsLoRA), and with DoRA rescales each output row
//! of `W + s B A` to its learned magnitude.

use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

/// How a model runs its stack of transformer blocks in a forward pass.
#[derive(Clone, Copy)]
pub enum BlockRun<'a> {
    /// Each block keeps its activations for the backward pass.
    Plain,
    /// Gradient checkpointing: each block's activations are made again in
    /// the backward pass. Holds each block's trainable tensors, the extra
    /// inputs its checkpoint gives gradients to (see `checkpoint_inputs`).
    Checkpointed(&'a [Vec<Tensor>]),
}

/// Each block's trainable tensors (those of `params` named under
/// `{stack}.{i}.`, LoRA and adapters included), when checkpointing is `on`
/// and the pass trains; `None` (a plain pass) otherwise. A block with none
/// whose input needs no gradient (frozen, below every trainable layer)
/// runs plainly: nothing is kept for it and nothing is made again.
pub fn checkpoint_inputs(on: bool, train: bool, stack: &str, blocks: i64, params: impl FnOnce() -> Vec<(String, Tensor)>) -> Option<Vec<Vec<Tensor>>> {
    if !(on && train) {
        return None;
    }
    let trainable: Vec<(String, Tensor)> = params().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    Some((0..blocks).map(|i| {
        let prefix = format!("{stack}.{i}.");
        trainable.iter().filter(|(name, _)| name.starts_with(&prefix)).map(|(_, t)| t.shallow_clone()).collect()
    }).collect())
}

impl<'a> BlockRun<'a> {
    /// Checkpointed with `inputs` (from `checkpoint_inputs`), or plain.
    pub fn from_inputs(inputs: Option<&'a [Vec<Tensor>]>) -> Self {
        inputs.map_or(Self::Plain, Self::Checkpointed)
    }

    /// Block `index`'s `block(xs)`, checkpointed or not. The block must own
    /// (or borrow from the model) what it reads: a checkpointed block runs
    /// again in the backward pass, after the caller's locals are gone.
    pub(crate) fn apply<'m>(self, index: usize, xs: &Tensor, block: impl Fn(&Tensor) -> Tensor + 'm) -> Tensor {
        match self {
            Self::Plain => block(xs),
            // SAFETY: the blocks borrow only the model, and the model outlives
            // every graph of a training pass (`Learner::set_checkpointing`'s
            // contract, which fit keeps by consuming each step's graph).
            // An error here is libtorch's (an allocation failure, say): it
            // panics as tch's own operators do, and fit catches it the same way.
            Self::Checkpointed(inputs) => unsafe { crate::runtime::checkpoint::checkpoint(xs, &inputs[index], block) }.unwrap_or_else(|e| panic!("{e:#}")),
        }
    }
}

/// Settings of `add_lora`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: i64,
    /// Scale numerator: the update is multiplied by `alpha / r` (or
    /// `alpha / sqrt(r)` with `rslora`).
    pub alpha: f64,
    /// Dropout on the update's input, in training only.
    pub dropout: f64,
    /// Which linear layers get an update: a last name part (`query`), a
    /// module path, or a glob over module paths.
    pub targets: Vec<String>,
    /// Rank-stabilized LoRA (Kalajdzievski, 2023; PEFT's `use_rslora`):
    /// scale by `alpha / sqrt(r)`, so that higher ranks keep learning.
    pub rslora: bool,
    /// Weight-decomposed LoRA (Liu et al., 2024; PEFT's `use_dora`): a
    /// trainable magnitude per output row times the direction of `W + s B A`.
    pub dora: bool,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, no dropout, no targets, plain LoRA.
    fn default() -> Self {
        Self { r: 8, alpha: 16.0, dropout: 0.0, targets: Vec::new(), rslora: false, dora: false }
    }
}

impl LoraConfig {
    /// The factor on `B A`.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// The variable-name endings an update adds to a layer.
    pub const PARTS: [&'static str; 3] = [".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector"];

    /// Whether a variable is part of a LoRA update.
    pub fn is_lora_variable(name: &str) -> bool {
        name.contains(".lora_A.") || name.contains(".lora_B.") || name.ends_with(".lora_magnitude_vector")
    }
}

/// Each output row's norm of a `[out, in]` weight: DoRA's `||W||_c`.
fn row_norms(w: &Tensor) -> Tensor {
    w.square().sum_dim_intlist(1, false, w.kind()).sqrt()
}

/// `W + s B A`, and with a DoRA magnitude `m` each row rescaled to
/// `m / ||W + s B A||_c` of itself: the weight with an update folded in.
pub fn merge_update(w: &Tensor, a: &Tensor, b: &Tensor, magnitude: Option<&Tensor>, scale: f64) -> Tensor {
    tch::no_grad(|| {
        let merged = w + b.matmul(a) * scale;
        match magnitude {
            Some(m) => (m / row_norms(&merged)).unsqueeze(1) * merged,
            None => merged,
        }
    })
}

/// A low-rank update of one linear layer.
#[derive(Debug)]
struct Lora {
    a: Tensor,
    b: Tensor,
    /// DoRA's magnitude per output row.
    magnitude: Option<Tensor>,
    scale: f64,
    dropout: f64,
}

/// A linear layer of the encoder, with an optional LoRA update.
#[derive(Debug)]
pub struct Dense {
    linear: nn::Linear,
    /// The variable-store path (`bert.encoder.layer.0.attention.self.query`).
    path: String,
    lora: Option<Lora>,
}

impl Dense {
    /// A linear layer `in_dim -> out_dim` with its variables under `p`.
    pub fn new(p: nn::Path, in_dim: i64, out_dim: i64) -> Self {
        let path = p.components().collect::<Vec<_>>().join(".");
        Self { linear: nn::linear(p, in_dim, out_dim, Default::default()), path, lora: None }
    }

    /// A linear layer `in_dim -> out_dim`, with a bias or without one
    /// (decoders' projections have none).
    pub fn with_bias(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Self {
        let path = p.components().collect::<Vec<_>>().join(".");
        Self { linear: nn::linear(p, in_dim, out_dim, nn::LinearConfig { bias, ..Default::default() }), path, lora: None }
    }

    /// `W x + b`, plus the LoRA update when there is one.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = xs.linear(&weight_for(&self.linear.ws, xs), self.linear.bs.as_ref());
        let Some(l) = &self.lora else { return out };
        let dropped = xs.dropout(l.dropout, train);
        let update = dropped.matmul(&l.a.tr()).matmul(&l.b.tr()) * l.scale;
        let Some(m) = &l.magnitude else { return out + update };
        // DoRA as PEFT computes it: the norm is a constant of the step (the
        // paper's section 4.3), and the base output is reused when no
        // dropout changed the input.
        let norm = tch::no_grad(|| row_norms(&(&self.linear.ws + l.b.matmul(&l.a) * l.scale)));
        let factor = m / norm;
        let base = if l.dropout > 0.0 && train {
            dropped.matmul(&weight_for(&self.linear.ws, &dropped).tr())
        } else {
            match &self.linear.bs {
                Some(b) => &out - b,
                None => out.shallow_clone(),
            }
        };
        out + (&factor - 1.0) * base + factor * update
    }

    /// The variable-store path of this layer.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether a LoRA update is attached.
    pub fn has_lora(&self) -> bool {
        self.lora.is_some()
    }

    /// Attaches a LoRA update as PEFT initializes it: A uniform in
    /// `±1/sqrt(in)` (kaiming-uniform with a = sqrt(5)), B zero, so that the
    /// layer's output is unchanged until B trains; with DoRA the magnitude
    /// starts as the weight's row norms, which changes nothing either.
    pub fn add_lora(&mut self, root: &nn::Path, config: &LoraConfig) {
        let (out_dim, in_dim) = self.linear.ws.size2().expect("a linear weight is 2-D");
        let p = sub_path(root, &self.path);
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = (&p / "lora_A").var("weight", &[config.r, in_dim], Init::Uniform { lo: -bound, up: bound });
        let b = (&p / "lora_B").var("weight", &[out_dim, config.r], Init::Const(0.0));
        let magnitude = config.dora.then(|| p.var_copy("lora_magnitude_vector", &tch::no_grad(|| row_norms(&self.linear.ws))));
        self.lora = Some(Lora { a, b, magnitude, scale: config.scale(), dropout: config.dropout });
    }

    /// The weight with the update folded in.
    pub fn merged_weight(&self) -> Tensor {
        match &self.lora {
            None => self.linear.ws.detach().copy(),
            Some(l) => merge_update(&self.linear.ws, &l.a, &l.b, l.magnitude.as_ref(), l.scale),
        }
    }

    /// Folds the update into the weight and drops it; returns the paths of
    /// the update's variables, which the caller removes from the store.
    pub fn merge_lora(&mut self) -> Vec<String> {
        let Some(lora) = self.lora.take() else { return Vec::new() };
        let merged = merge_update(&self.linear.ws, &lora.a, &lora.b, lora.magnitude.as_ref(), lora.scale);
        tch::no_grad(|| self.linear.ws.copy_(&merged));
        LoraConfig::PARTS.iter().take(if lora.magnitude.is_some() { 3 } else { 2 }).map(|part| format!("{}{part}", self.path)).collect()
    }
}

/// `weight` as `xs` multiplies it: a weight stored in bf16 (`weights:
/// "bf16"`) is cast to the inputs' kind where no autocast casts both, so
/// that frozen weights halve their memory while the activations stay fp32.
pub fn weight_for(weight: &Tensor, xs: &Tensor) -> Tensor {
    if weight.kind() == xs.kind() || crate::runtime::precision::Autocast::is_on(xs.device()) {
        weight.shallow_clone()
    } else {
        weight.to_kind(xs.kind())
    }
}

/// The rows of an embedding table for `ids`, in fp32 whatever the table is
/// stored in, so that the hidden states start in fp32.
pub fn lookup(table: &nn::Embedding, ids: &Tensor) -> Tensor {
    let rows = ids.apply(table);
    if rows.kind() == Kind::Float {
        rows
    } else {
        rows.to_kind(Kind::Float)
    }
}

/// Rows of the head computed at once by `linear_cross_entropy`: about 64
/// MB of fp32 logits for a 49,152-token vocabulary.
const LOSS_CHUNK_ELEMENTS: i64 = 1 << 24;

/// The mean cross-entropy of the logits `hidden @ head^T` against `labels`
/// (`-100` ignored), for `[.., hidden]` states and `[..]` labels, without
/// keeping the `[tokens, vocab]` logits: only labelled rows are projected,
/// a chunk at a time, and each chunk's softmax gives the loss and, in the
/// same pass, the gradients (`(softmax - onehot) / n` times the head or the
/// states), which reach autograd through a term whose value is zero. A
/// language model's vocabulary makes the logits the largest tensor of a
/// step; this never holds more than one chunk of them (the technique of
/// Liger's fused linear cross-entropy and Apple's Cut Cross-Entropy).
/// The softmax is in fp32 whatever the states' kind.
pub fn linear_cross_entropy(hidden: &Tensor, head: &Tensor, labels: &Tensor) -> Tensor {
    chunked_cross_entropy(hidden, head, labels, LOSS_CHUNK_ELEMENTS)
}

/// `linear_cross_entropy` with chunks of about `chunk_elements` logits.
fn chunked_cross_entropy(hidden: &Tensor, head: &Tensor, labels: &Tensor, chunk_elements: i64) -> Tensor {
    let width = *hidden.size().last().expect("hidden states have a feature dimension");
    let flat = hidden.reshape([-1, width]);
    let targets = labels.reshape([-1]).to_device(flat.device());
    let rows = targets.ne(-100).nonzero().squeeze_dim(1);
    let n = rows.size()[0];
    if n == 0 {
        // Nothing to learn here: a zero that keeps the graph.
        return hidden.sum(Kind::Float) * 0.0;
    }
    let states = flat.index_select(0, &rows);
    let targets = targets.index_select(0, &rows).unsqueeze(1);
    let want_states = states.requires_grad();
    let want_head = head.requires_grad();
    let (vocab, _) = head.size2().expect("the head is [vocab, hidden]");
    let chunk = (chunk_elements / vocab).max(1);
    // Without autocast: under fp16 the hand-made gradients (about p / n)
    // would flush to zero before the loss scale reaches them.
    // The products in the head's kind; without autocast a head stored in
    // bf16 is cast to the states' fp32 (a transient copy).
    let w = weight_for(head, &states).detach();
    let (loss_sum, grad_states, grad_head) = crate::runtime::precision::without_autocast(head.device(), || tch::no_grad(|| {
        let s = states.detach().to_kind(w.kind());
        let mut loss_sum = Tensor::zeros([], (Kind::Float, s.device()));
        let mut grad_states = Vec::new();
        let mut grad_head = want_head.then(|| Tensor::zeros(w.size(), (Kind::Float, w.device())));
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let (s_c, t_c) = (s.narrow(0, start, len), targets.narrow(0, start, len));
            let logits = s_c.matmul(&w.tr()).to_kind(Kind::Float);
            let lse = logits.logsumexp([1], true);
            loss_sum += (&lse - logits.gather(1, &t_c, false)).sum(Kind::Float);
            if want_states || want_head {
                // (softmax - onehot) / n, in place over the chunk's logits.
                let mut d = (logits - lse).exp_();
                let _ = d.scatter_add_(1, &t_c, &Tensor::full([len, 1], -1.0, (Kind::Float, d.device())));
                let d = (d / n as f64).to_kind(w.kind());
                if want_states {
                    grad_states.push(d.matmul(&w));
                }
                if let Some(g) = grad_head.as_mut() {
                    *g += d.tr().matmul(&s_c).to_kind(Kind::Float);
                }
            }
            start += len;
        }
        (loss_sum, grad_states, grad_head)
    }));
    let loss = loss_sum / n as f64;
    // A term whose value is 0 and whose gradients are those computed above.
    let mut carrier = hidden.sum(Kind::Float) * 0.0;
    if want_states {
        let g = Tensor::cat(&grad_states, 0);
        let term = (&states * &g).sum(Kind::Float);
        carrier = carrier + &term - term.detach();
    }
    if let Some(g) = grad_head {
        let term = (head * g.to_kind(head.kind())).sum(Kind::Float);
        carrier = carrier + &term - term.detach();
    }
    carrier + loss
}

/// A Houlsby bottleneck adapter: `x + up(act(down(x)))`, with `up` starting
/// at zero so that a new adapter is the identity.
#[derive(Debug)]
pub struct Bottleneck {
    down: nn::Linear,
    up: nn::Linear,
}

impl Bottleneck {
    /// An adapter `hidden -> size -> hidden` with its variables under `p`
    /// (`...adapter.down`, `...adapter.up`).
    pub fn new(p: nn::Path, hidden: i64, size: i64) -> Self {
        let down_init = nn::LinearConfig { ws_init: Init::Randn { mean: 0.0, stdev: 0.02 }, bs_init: Some(Init::Const(0.0)), bias: true };
        let up_init = nn::LinearConfig { ws_init: Init::Const(0.0), bs_init: Some(Init::Const(0.0)), bias: true };
        Self { down: nn::linear(&p / "down", hidden, size, down_init), up: nn::linear(&p / "up", size, hidden, up_init) }
    }

    /// The adapted hidden states.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs + self.up.forward(&self.down.forward(xs).gelu("none"))
    }
}

/// The path `root / a / b / ...` for a dotted `a.b...`.
pub fn sub_path<'a>(root: &nn::Path<'a>, dotted: &str) -> nn::Path<'a> {
    let mut parts = dotted.split('.');
    let mut p = root.sub(parts.next().unwrap_or_default());
    for part in parts {
        p = p.sub(part);
    }
    p
}

/// Multi-head scaled-dot-product attention over projected `[batch, seq,
/// hidden]` queries, keys and values (libtorch's SDPA); `mask` is boolean
/// `[batch, 1, 1, seq]`, true where a key may be attended.
fn attend(q: Tensor, k: Tensor, v: Tensor, heads: i64, mask: &Tensor, dropout: f64) -> Tensor {
    let (b, s, h) = q.size3().expect("hidden states are [batch, seq, hidden]");
    let split = |t: Tensor| t.view([b, s, heads, h / heads]).transpose(1, 2);
    let context = Tensor::scaled_dot_product_attention(&split(q), &split(k), &split(v), Some(mask), dropout, false, None, false);
    context.transpose(1, 2).contiguous().view([b, s, h])
}

/// Where the real tokens of an encoder's padded batch are. The per-token
/// layers (linear maps, LayerNorm, activations, dropout, adapters) run on
/// the real tokens alone, packed as `[tokens, hidden]`, and only attention
/// sees the padded `[batch, seq, hidden]` layout. Padding then costs those
/// layers nothing, and the real tokens' states are the padded computation's
/// (a padded query's output is never read, a padded key is masked), as
/// padding-free BERT implementations do. A batch without padding stays in
/// the padded layout.
pub struct TokenLayout {
    /// Boolean `[batch, 1, 1, seq]`, true where a key may be attended.
    mask: Tensor,
    batch: i64,
    seq: i64,
    /// The real tokens' rows in the flattened `[batch * seq]` batch, when
    /// the batch has padding.
    real: Option<Tensor>,
}

impl TokenLayout {
    /// The layout of a batch with a 0/1 `[batch, seq]` attention mask.
    pub fn new(attention_mask: &Tensor) -> Self {
        let (batch, seq) = attention_mask.size2().expect("an attention mask is [batch, seq]");
        let keep = attention_mask.to_kind(Kind::Bool);
        // One wait for a GPU: the count of real tokens comes with their rows.
        let rows = keep.reshape([-1]).nonzero().squeeze_dim(1);
        let real = (rows.size()[0] < batch * seq).then_some(rows);
        Self { mask: keep.unsqueeze(1).unsqueeze(1), batch, seq, real }
    }

    /// The same layout, sharing its tensors (for a checkpointed block,
    /// which runs again after the caller's locals are gone).
    pub fn share(&self) -> Self {
        Self { mask: self.mask.shallow_clone(), batch: self.batch, seq: self.seq, real: self.real.as_ref().map(Tensor::shallow_clone) }
    }

    /// Padded `[batch, seq, hidden]` states in this layout.
    pub fn pack(&self, xs: &Tensor) -> Tensor {
        match &self.real {
            Some(real) => xs.reshape([self.batch * self.seq, -1]).index_select(0, real),
            None => xs.shallow_clone(),
        }
    }

    /// States in this layout as `[batch, seq, hidden]`, zero at padding.
    pub fn unpack(&self, xs: &Tensor) -> Tensor {
        match &self.real {
            Some(real) => {
                let width = *xs.size().last().expect("states have a feature dimension");
                Tensor::zeros([self.batch * self.seq, width], (xs.kind(), xs.device())).index_copy(0, real, xs).view([self.batch, self.seq, width])
            }
            None => xs.shallow_clone(),
        }
    }

    /// Multi-head attention (libtorch's SDPA) over projected queries, keys
    /// and values in this layout; the context in this layout.
    pub fn attend(&self, q: Tensor, k: Tensor, v: Tensor, heads: i64, dropout: f64) -> Tensor {
        let context = attend(self.unpack(&q), self.unpack(&k), self.unpack(&v), heads, &self.mask, dropout);
        self.pack(&context)
    }
}

/// The feed-forward activation a config names.
pub fn activate(xs: Tensor, activation: &str) -> Tensor {
    match activation {
        "relu" => xs.relu(),
        "gelu_new" => xs.gelu("tanh"),
        _ => xs.gelu("none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer with a trained-looking update: B and the magnitude moved off their start.
    fn adapted(config: &LoraConfig) -> (nn::VarStore, Dense) {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut dense = Dense::new(&vs.root() / "proj", 6, 5);
        dense.add_lora(&vs.root(), config);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.contains("lora_B") || name.contains("magnitude") {
                    let _ = t.g_add_(&(Tensor::randn_like(&t) * 0.3));
                }
            }
        });
        (vs, dense)
    }

    #[test]
    fn each_variant_computes_what_its_merged_weight_does() {
        let x = Tensor::randn([3, 6], (Kind::Float, tch::Device::Cpu));
        for (rslora, dora) in [(false, false), (true, false), (false, true), (true, true)] {
            let config = LoraConfig { r: 2, alpha: 4.0, targets: vec!["proj".into()], rslora, dora, ..Default::default() };
            let (_vs, dense) = adapted(&config);
            let merged = x.matmul(&dense.merged_weight().tr()) + dense.linear.bs.as_ref().unwrap();
            let d = (dense.forward(&x, false) - merged).abs().max().double_value(&[]);
            assert!(d < 1e-5, "rslora {rslora}, dora {dora}: forward and merged weight differ by {d}");
        }
        assert_eq!(LoraConfig { r: 4, alpha: 8.0, rslora: true, ..Default::default() }.scale(), 4.0);
    }

    #[test]
    fn chunked_cross_entropy_gives_the_loss_and_gradients_of_the_full_logits() {
        tch::manual_seed(3);
        let opts = (Kind::Float, tch::Device::Cpu);
        let hidden = Tensor::randn([2, 7, 5], opts).set_requires_grad(true);
        let head = Tensor::randn([11, 5], opts).set_requires_grad(true);
        let labels = Tensor::randint(11, [2, 7], (Kind::Int64, tch::Device::Cpu)).masked_fill(&Tensor::from_slice(&[true, false, true, false, false, true, true, false, false, false, true, false, false, true]).view([2, 7]), -100);
        // Chunks of 2 rows (22 logits) over the 8 labelled rows.
        let ours = chunked_cross_entropy(&hidden, &head, &labels, 22);
        let (gh, gw) = {
            let g = Tensor::run_backward(&[&ours], &[&hidden, &head], false, false);
            (g[0].copy(), g[1].copy())
        };
        let logits = hidden.matmul(&head.tr());
        let want = logits.view([-1, 11]).cross_entropy_loss::<Tensor>(&labels.view([-1]), None, tch::Reduction::Mean, -100, 0.0);
        let g = Tensor::run_backward(&[&want], &[&hidden, &head], false, false);
        let d = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        assert!(d(&ours, &want) < 1e-6, "loss {} vs {}", ours.double_value(&[]), want.double_value(&[]));
        assert!(d(&gh, &g[0]) < 1e-6 && d(&gw, &g[1]) < 1e-6, "gradients differ: {} {}", d(&gh, &g[0]), d(&gw, &g[1]));
        // No label at all: zero, with a graph.
        let none = chunked_cross_entropy(&hidden, &head, &labels.full_like(-100), 22);
        assert_eq!(none.double_value(&[]), 0.0);
        assert!(none.requires_grad());
    }

    #[test]
    fn a_new_dora_update_changes_nothing_and_merging_removes_its_three_variables() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut dense = Dense::new(&vs.root() / "proj", 6, 5);
        let x = Tensor::randn([3, 6], (Kind::Float, tch::Device::Cpu));
        let before = dense.forward(&x, false);
        dense.add_lora(&vs.root(), &LoraConfig { r: 2, targets: vec!["proj".into()], dora: true, ..Default::default() });
        assert!((dense.forward(&x, false) - &before).abs().max().double_value(&[]) < 1e-6);
        assert_eq!(dense.merge_lora(), vec!["proj.lora_A.weight", "proj.lora_B.weight", "proj.lora_magnitude_vector"]);
    }
}
