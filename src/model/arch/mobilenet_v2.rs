//! MobileNetV2 as torchvision builds it (`torchvision.models.mobilenet_v2`,
//! width 1.0): a stem convolution, 17 inverted residual blocks and a 1x1
//! convolution to 1,280 channels, all `features.N`; the classifier
//! (`classifier.1`, after dropout 0.2) is the image model's head. ReLU6
//! follows every BatchNorm but the projections'; BatchNorm eps 1e-5,
//! momentum 0.1; padding `(k - 1) / 2`.

use tch::nn;
use tch::Tensor;

use super::conv::{average_pool, channels_last, BatchNorm, BnConfig, ConvBn, ConvShape, Padding};

/// BatchNorm as torchvision's MobileNetV2 has it (PyTorch's defaults).
const BN: BnConfig = BnConfig { eps: 1e-5, momentum: 0.1 };

/// The inverted residual settings: expansion, output channels, repeats,
/// stride of the first.
const SETTINGS: [(i64, i64, i64, i64); 7] = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// Channels after the stem, and of the last convolution.
const STEM: i64 = 32;
/// Channels the head reads.
pub const FEATURES: i64 = 1280;

/// An inverted residual block: an optional 1x1 expansion, a 3x3 depthwise
/// convolution and a linear 1x1 projection, with the input added back
/// when the shape allows.
#[derive(Debug)]
struct InvertedResidual {
    layers: Vec<ConvBn>,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: nn::Path, input: i64, output: i64, stride: i64, expand: i64) -> Self {
        let hidden = input * expand;
        let conv = &p / "conv";
        let mut layers = Vec::new();
        let mut at = 0;
        if expand != 1 {
            layers.push(ConvBn::new(&conv / at / 0, &conv / at / 1, ConvShape { input, output: hidden, kernel: 1, stride: 1, groups: 1 }, Padding::Symmetric, BN, true));
            at += 1;
        }
        layers.push(ConvBn::new(&conv / at / 0, &conv / at / 1, ConvShape { input: hidden, output: hidden, kernel: 3, stride, groups: hidden }, Padding::Symmetric, BN, true));
        // The projection's convolution and BatchNorm are siblings (`conv.2`, `conv.3`).
        layers.push(ConvBn::new(&conv / (at + 1), &conv / (at + 2), ConvShape { input: hidden, output, kernel: 1, stride: 1, groups: 1 }, Padding::Symmetric, BN, false));
        Self { layers, residual: stride == 1 && input == output }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let ys = self.layers.iter().fold(xs.shallow_clone(), |h, l| l.forward(&h, train));
        if self.residual {
            xs + ys
        } else {
            ys
        }
    }
}

/// One entry of `features`.
#[derive(Debug)]
enum Feature {
    Conv(ConvBn),
    Block(InvertedResidual),
}

/// MobileNetV2's feature extractor.
#[derive(Debug)]
pub struct MobileNetV2 {
    features: Vec<Feature>,
}

impl MobileNetV2 {
    /// The network's variables under `root / "features"`.
    pub fn new(root: &nn::Path) -> Self {
        let f = root / "features";
        let mut features = vec![Feature::Conv(ConvBn::new(&f / 0 / 0, &f / 0 / 1, ConvShape { input: 3, output: STEM, kernel: 3, stride: 2, groups: 1 }, Padding::Symmetric, BN, true))];
        let mut input = STEM;
        for (expand, output, repeats, stride) in SETTINGS {
            for r in 0..repeats {
                let at = features.len() as i64;
                features.push(Feature::Block(InvertedResidual::new(&f / at, input, output, if r == 0 { stride } else { 1 }, expand)));
                input = output;
            }
        }
        let at = features.len() as i64;
        features.push(Feature::Conv(ConvBn::new(&f / at / 0, &f / at / 1, ConvShape { input, output: FEATURES, kernel: 1, stride: 1, groups: 1 }, Padding::Symmetric, BN, true)));
        Self { features }
    }

    /// Pooled features `[n, 1280]` of `[n, 3, h, w]` normalized images.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        average_pool(&self.feature_maps(xs, train))
    }

    /// The last feature maps `[n, 1280, h / 32, w / 32]` (what Grad-CAM weighs).
    pub fn feature_maps(&self, xs: &Tensor, train: bool) -> Tensor {
        self.features.iter().fold(channels_last(xs), |h, f| match f {
            Feature::Conv(c) => c.forward(&h, train),
            Feature::Block(b) => b.forward(&h, train),
        })
    }

    /// The entries of `features` (19).
    pub fn depth(&self) -> usize {
        self.features.len()
    }

    /// Every BatchNorm, in order.
    pub fn batch_norms(&self) -> Vec<&BatchNorm> {
        self.features
            .iter()
            .flat_map(|f| match f {
                Feature::Conv(c) => vec![&c.bn],
                Feature::Block(b) => b.layers.iter().map(|l| &l.bn).collect(),
            })
            .collect()
    }
}
