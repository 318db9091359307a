//! GPT-2: learned positions, LayerNorm, one fused `c_attn` projection and
//! the `gelu_new` MLP, with the head tied to the token embedding. The
//! checkpoint's `Conv1D` weights are `[in, out]`; they are held as linear
//! layers (`[out, in]`, so LoRA treats every family alike) and transposed
//! on loading and saving (`CONV1D_WEIGHTS`).

use tch::nn::{self, Module};
use tch::Tensor;

use super::decoder::{attend, AttnMask, LayerCache};
use super::decoder_config::DecoderConfig;
use crate::model::layers::{lookup, weight_for, BlockRun, Dense};

/// The name endings of GPT-2's `Conv1D` weights, stored `[in, out]`.
pub const CONV1D_WEIGHTS: &[&str] = &["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"];

#[derive(Debug)]
struct Block {
    ln_1: nn::LayerNorm,
    c_attn: Dense,
    attn_c_proj: Dense,
    ln_2: nn::LayerNorm,
    c_fc: Dense,
    mlp_c_proj: Dense,
    heads: i64,
}

impl Block {
    fn new(p: nn::Path, c: &DecoderConfig) -> Self {
        let h = c.hidden_size;
        let ln = |p: nn::Path| nn::layer_norm(p, vec![h], nn::LayerNormConfig { eps: c.norm_eps, ..Default::default() });
        Self {
            ln_1: ln(&p / "ln_1"),
            c_attn: Dense::new(&p / "attn" / "c_attn", h, 3 * h),
            attn_c_proj: Dense::new(&p / "attn" / "c_proj", h, h),
            ln_2: ln(&p / "ln_2"),
            c_fc: Dense::new(&p / "mlp" / "c_fc", h, c.intermediate_size),
            mlp_c_proj: Dense::new(&p / "mlp" / "c_proj", c.intermediate_size, h),
            heads: c.num_heads,
        }
    }

    fn forward(&self, xs: &Tensor, mask: &AttnMask, cache: Option<&mut LayerCache>, train: bool) -> Tensor {
        let (b, s, h) = xs.size3().expect("hidden states are [batch, seq, hidden]");
        let qkv = self.c_attn.forward(&self.ln_1.forward(xs), train).split(h, -1);
        let split = |t: &Tensor| t.view([b, s, self.heads, h / self.heads]).transpose(1, 2);
        let (q, k, v) = (split(&qkv[0]), split(&qkv[1]), split(&qkv[2]));
        let (k, v) = match cache {
            Some(c) => c.extend(k, v),
            None => (k, v),
        };
        let context = attend(&q, k, v, 1, mask);
        let h1 = xs + self.attn_c_proj.forward(&context.transpose(1, 2).reshape([b, s, h]), train);
        let m = self.c_fc.forward(&self.ln_2.forward(&h1), train).gelu("tanh");
        &h1 + self.mlp_c_proj.forward(&m, train)
    }
}

/// GPT-2 with its tied language-model head.
#[derive(Debug)]
pub struct Gpt2 {
    wte: nn::Embedding,
    wpe: nn::Embedding,
    h: Vec<Block>,
    ln_f: nn::LayerNorm,
}

impl Gpt2 {
    /// GPT-2's variables under `root / "transformer"`.
    pub fn new(root: &nn::Path, c: &DecoderConfig) -> Self {
        let p = root / "transformer";
        Self {
            wte: nn::embedding(&p / "wte", c.vocab_size, c.hidden_size, Default::default()),
            wpe: nn::embedding(&p / "wpe", c.max_positions, c.hidden_size, Default::default()),
            h: (0..c.num_layers).map(|i| Block::new(&p / "h" / i, c)).collect(),
            ln_f: nn::layer_norm(&p / "ln_f", vec![c.hidden_size], nn::LayerNormConfig { eps: c.norm_eps, ..Default::default() }),
        }
    }

    /// Logits as `Decoder::forward` computes them.
    pub fn forward(&self, ids: &Tensor, positions: &Tensor, mask: &AttnMask, cache: Option<&mut Vec<LayerCache>>, train: bool, last_only: bool) -> Tensor {
        let hidden = self.hidden(ids, positions, mask, cache, train, last_only, BlockRun::Plain);
        hidden.matmul(&weight_for(&self.wte.ws, &hidden).tr())
    }

    /// The final normed hidden states `[batch, seq, hidden]`; as `forward`
    /// otherwise, and `run` as in `Decoder::hidden`.
    #[allow(clippy::too_many_arguments)]
    pub fn hidden(&self, ids: &Tensor, positions: &Tensor, mask: &AttnMask, mut cache: Option<&mut Vec<LayerCache>>, train: bool, last_only: bool, run: BlockRun) -> Tensor {
        let mut x = lookup(&self.wte, ids) + lookup(&self.wpe, positions);
        for (i, block) in self.h.iter().enumerate() {
            x = match cache.as_deref_mut() {
                Some(c) => block.forward(&x, mask, Some(&mut c[i]), train),
                None => {
                    let mask = mask.shallow_clone();
                    run.apply(i, &x, move |h| block.forward(h, &mask, None, train))
                }
            };
        }
        let x = if last_only { x.narrow(1, x.size()[1] - 1, 1) } else { x };
        self.ln_f.forward(&x)
    }

    /// The head's weight `[vocab, hidden]`: the token embedding (GPT-2 ties them).
    pub fn head_weight(&self) -> &Tensor {
        &self.wte.ws
    }

    /// Every linear layer, for LoRA.
    pub fn denses_mut(&mut self) -> Vec<&mut Dense> {
        self.h.iter_mut().flat_map(|b| [&mut b.c_attn, &mut b.attn_c_proj, &mut b.c_fc, &mut b.mlp_c_proj]).collect()
    }
}
