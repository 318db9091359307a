//! The blocks the ImageNet backbones share: BatchNorm whose statistics
//! freeze with its weights, a convolution with its BatchNorm and ReLU6
//! (torchvision's `Conv2dNormActivation`), TensorFlow's "same" padding, and
//! the drop-connect of residual paths. Names mirror the checkpoints: each
//! block takes the paths of its convolution and its BatchNorm.

use std::sync::atomic::{AtomicI64, Ordering};

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// BatchNorm over channels. In training it normalizes with the batch's
/// statistics and updates its running ones, unless its weight is frozen:
/// a frozen BatchNorm stays in evaluation mode while the rest trains, so
/// that a frozen backbone's statistics cannot drift.
#[derive(Debug)]
pub struct BatchNorm {
    bn: nn::BatchNorm,
    path: String,
    /// Training batches seen (PyTorch's `num_batches_tracked`), saved with
    /// the weights so that torchvision loads them strictly.
    tracked: AtomicI64,
}

impl BatchNorm {
    /// BatchNorm over `channels` under `p`, with PyTorch's `eps` and `momentum`.
    pub fn new(p: nn::Path, channels: i64, eps: f64, momentum: f64) -> Self {
        let path = p.components().collect::<Vec<_>>().join(".");
        let bn = nn::batch_norm2d(p, channels, nn::BatchNormConfig { eps, momentum, ..Default::default() });
        Self { bn, path, tracked: AtomicI64::new(0) }
    }

    /// Whether its statistics are frozen (its weight does not train).
    pub fn statistics_frozen(&self) -> bool {
        !self.bn.ws.as_ref().is_some_and(Tensor::requires_grad)
    }

    /// Normalized `xs`; in training, updates the running statistics unless frozen.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let update = train && !self.statistics_frozen();
        if update {
            self.tracked.fetch_add(1, Ordering::Relaxed);
        }
        self.bn.forward_t(xs, update)
    }

    /// The module path (`features.0.1`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Training batches seen.
    pub fn batches_tracked(&self) -> i64 {
        self.tracked.load(Ordering::Relaxed)
    }

    /// Sets the count of training batches seen (from a checkpoint).
    pub fn set_batches_tracked(&self, n: i64) {
        self.tracked.store(n, Ordering::Relaxed);
    }
}

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `(k - 1) / 2` on every side (PyTorch's models).
    Symmetric,
    /// TensorFlow's "same": the output is `ceil(input / stride)`, and an
    /// odd total padding puts the extra pixel right and bottom.
    Same,
}

/// A convolution without bias, its BatchNorm and optionally ReLU6.
#[derive(Debug)]
pub struct ConvBn {
    conv: nn::Conv2D,
    /// Its BatchNorm.
    pub bn: BatchNorm,
    relu6: bool,
    kernel: i64,
    stride: i64,
    padding: Padding,
}

/// The shape of one convolution of a `ConvBn`.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    /// Input channels.
    pub input: i64,
    /// Output channels.
    pub output: i64,
    /// Square kernel size.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Groups (the channels, for a depthwise convolution).
    pub groups: i64,
}

/// BatchNorm's `eps` and `momentum` (PyTorch's convention).
#[derive(Debug, Clone, Copy)]
pub struct BnConfig {
    /// Added to the variance.
    pub eps: f64,
    /// Weight of a new batch in the running statistics.
    pub momentum: f64,
}

impl ConvBn {
    /// The convolution under `conv` and its BatchNorm under `bn`.
    pub fn new(conv: nn::Path, bn: nn::Path, shape: ConvShape, padding: Padding, bn_config: BnConfig, relu6: bool) -> Self {
        let symmetric = if padding == Padding::Symmetric { (shape.kernel - 1) / 2 } else { 0 };
        let config = nn::ConvConfig { stride: shape.stride, padding: symmetric, groups: shape.groups, bias: false, ..Default::default() };
        Self {
            conv: nn::conv2d(conv, shape.input, shape.output, shape.kernel, config),
            bn: BatchNorm::new(bn, shape.output, bn_config.eps, bn_config.momentum),
            relu6,
            kernel: shape.kernel,
            stride: shape.stride,
            padding,
        }
    }

    /// Convolution, BatchNorm and the activation.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let xs = match self.padding {
            Padding::Same => pad_same(xs, self.kernel, self.stride),
            Padding::Symmetric => xs.shallow_clone(),
        };
        let mut ys = self.bn.forward(&xs.apply(&self.conv), train);
        if self.relu6 {
            // In place, as torchvision's ReLU6(inplace=True): one pass, no new tensor.
            let _ = ys.relu6_();
        }
        ys
    }
}

/// Zero-pads `[n, c, h, w]` as TensorFlow's "same" for a square kernel
/// and stride.
fn pad_same(xs: &Tensor, kernel: i64, stride: i64) -> Tensor {
    let size = xs.size();
    let total = |input: i64| ((input + stride - 1) / stride - 1) * stride + kernel - input;
    let (ph, pw) = (total(size[2]).max(0), total(size[3]).max(0));
    if ph == 0 && pw == 0 {
        return xs.shallow_clone();
    }
    xs.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
}

/// Drops a residual branch for whole samples with probability `p` in
/// training, scaling the kept ones by `1 / (1 - p)` (EfficientNet's
/// drop-connect, also called stochastic depth).
pub fn drop_connect(xs: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p <= 0.0 {
        return xs.shallow_clone();
    }
    let keep = 1.0 - p;
    let n = xs.size()[0];
    let mask = (Tensor::rand([n, 1, 1, 1], (Kind::Float, xs.device())) + keep).floor().to_kind(xs.kind());
    xs / keep * mask
}

/// `[n, c, h, w]` images laid out channels-last in memory (strides
/// `[h*w*c, 1, w*c, c]`; the shape is unchanged). libtorch's oneDNN
/// convolutions run on this layout without reordering every activation,
/// 1.5x faster for MobileNetV2's training step on CPU (benches/README.md);
/// every later activation keeps the layout.
pub fn channels_last(xs: &Tensor) -> Tensor {
    let size = xs.size();
    if size.len() != 4 {
        return xs.shallow_clone();
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    if xs.stride() == [h * w * c, 1, w * c, c] {
        return xs.shallow_clone();
    }
    xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Global average pooling to `[n, c]`.
pub fn average_pool(xs: &Tensor) -> Tensor {
    xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_puts_the_odd_pixel_right_and_bottom_on_stride_two() {
        let x = Tensor::ones([1, 1, 224, 224], (Kind::Float, tch::Device::Cpu));
        assert_eq!(pad_same(&x, 3, 2).size(), [1, 1, 225, 225]);
        let padded = pad_same(&x, 3, 2);
        assert_eq!((padded.double_value(&[0, 0, 0, 0]), padded.double_value(&[0, 0, 224, 224])), (1.0, 0.0), "(0, 1, 0, 1)");
        assert_eq!(pad_same(&x, 5, 2).size(), [1, 1, 227, 227], "(1, 2, 1, 2)");
        assert_eq!(pad_same(&x, 5, 1).size(), [1, 1, 228, 228], "(2, 2, 2, 2)");
        assert_eq!(pad_same(&x, 1, 1).size(), [1, 1, 224, 224]);
    }

    #[test]
    fn channels_last_keeps_shape_and_values_and_changes_only_the_strides() {
        let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, tch::Device::Cpu)).reshape([2, 3, 4, 5]);
        let y = channels_last(&x);
        assert_eq!(y.size(), [2, 3, 4, 5]);
        assert_eq!(y.stride(), [60, 1, 15, 3]);
        assert!(y.equal(&x));
        assert_eq!(channels_last(&y).data_ptr(), y.data_ptr(), "already channels-last: no copy");
    }
}
