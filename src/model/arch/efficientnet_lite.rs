//! EfficientNet-Lite0 as the `efficientnet_lite_pytorch` package builds it
//! (from Google's TensorFlow Lite checkpoint): a stem convolution
//! (`_conv_stem`, `_bn0`), 16 MBConv blocks (`_blocks.N`: `_expand_conv`,
//! `_bn0`, `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`) without
//! squeeze-excitation, and a 1x1 convolution to 1,280 channels
//! (`_conv_head`, `_bn1`); the classifier (`_fc`, after dropout 0.2) is the
//! image model's head. ReLU6, TensorFlow's "same" padding (asymmetric on
//! stride-2 convolutions), BatchNorm eps 1e-3 and momentum 0.01, and
//! drop-connect on residual paths in training, growing to 0.2 at the top.

use tch::nn;
use tch::Tensor;

use super::conv::{average_pool, channels_last, drop_connect, BatchNorm, BnConfig, ConvBn, ConvShape, Padding};

/// BatchNorm as TensorFlow trained it.
const BN: BnConfig = BnConfig { eps: 1e-3, momentum: 0.01 };

/// The stages: repeats, kernel, stride of the first, expansion, output channels.
const STAGES: [(usize, i64, i64, i64, i64); 7] = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)];

/// Channels after the stem.
const STEM: i64 = 32;
/// Channels the head reads.
pub const FEATURES: i64 = 1280;
/// Drop-connect rate of the top block (scaled by depth below it).
const DROP_CONNECT: f64 = 0.2;

/// An MBConv block: an optional 1x1 expansion, a depthwise convolution and
/// a linear 1x1 projection, with the input added back when the shape allows.
#[derive(Debug)]
struct MbConv {
    layers: Vec<ConvBn>,
    residual: bool,
    drop: f64,
}

impl MbConv {
    fn new(p: nn::Path, input: i64, output: i64, kernel: i64, stride: i64, expand: i64, drop: f64) -> Self {
        let hidden = input * expand;
        let mut layers = Vec::new();
        if expand != 1 {
            layers.push(ConvBn::new(&p / "_expand_conv", &p / "_bn0", ConvShape { input, output: hidden, kernel: 1, stride: 1, groups: 1 }, Padding::Same, BN, true));
        }
        layers.push(ConvBn::new(&p / "_depthwise_conv", &p / "_bn1", ConvShape { input: hidden, output: hidden, kernel, stride, groups: hidden }, Padding::Same, BN, true));
        layers.push(ConvBn::new(&p / "_project_conv", &p / "_bn2", ConvShape { input: hidden, output, kernel: 1, stride: 1, groups: 1 }, Padding::Same, BN, false));
        Self { layers, residual: stride == 1 && input == output, drop }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = self.layers.iter().fold(xs.shallow_clone(), |h, l| l.forward(&h, train));
        if self.residual {
            drop_connect(&ys, self.drop, train) + xs
        } else {
            ys
        }
    }
}

/// EfficientNet-Lite0's feature extractor.
#[derive(Debug)]
pub struct EfficientNetLite {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    head: ConvBn,
}

impl EfficientNetLite {
    /// The network's variables under `root`.
    pub fn new(root: &nn::Path) -> Self {
        let stem = ConvBn::new(root / "_conv_stem", root / "_bn0", ConvShape { input: 3, output: STEM, kernel: 3, stride: 2, groups: 1 }, Padding::Same, BN, true);
        let total: usize = STAGES.iter().map(|s| s.0).sum();
        let mut blocks = Vec::with_capacity(total);
        let mut input = STEM;
        for (repeats, kernel, stride, expand, output) in STAGES {
            for r in 0..repeats {
                let i = blocks.len();
                let drop = DROP_CONNECT * i as f64 / total as f64;
                blocks.push(MbConv::new(root / "_blocks" / i, input, output, kernel, if r == 0 { stride } else { 1 }, expand, drop));
                input = output;
            }
        }
        let head = ConvBn::new(root / "_conv_head", root / "_bn1", ConvShape { input, output: FEATURES, kernel: 1, stride: 1, groups: 1 }, Padding::Same, BN, true);
        Self { stem, blocks, head }
    }

    /// Pooled features `[n, 1280]` of `[n, 3, h, w]` normalized images.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        average_pool(&self.feature_maps(xs, train))
    }

    /// The last feature maps `[n, 1280, h / 32, w / 32]`.
    pub fn feature_maps(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = self.stem.forward(&channels_last(xs), train);
        let h = self.blocks.iter().fold(h, |h, b| b.forward(&h, train));
        self.head.forward(&h, train)
    }

    /// The MBConv blocks (16).
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// Every BatchNorm, in order.
    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        std::iter::once(&self.stem.bn).chain(self.blocks.iter().flat_map(|b| b.layers.iter().map(|l| &l.bn))).chain(std::iter::once(&self.head.bn)).collect()
    }
}
