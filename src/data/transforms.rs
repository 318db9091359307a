//! Image transforms as torchvision defines them, on one `[c, h, w]` float
//! image (0-1) at a time in the loader's thread: resizing (bilinear with
//! antialiasing, as `transforms.Resize`), center crops, random resized
//! crops (`RandomResizedCrop`'s area and aspect-ratio draw), colour jitter
//! (`ColorJitter`: brightness, contrast, saturation and hue in a random
//! order) and grey to RGB. Draws come from the row's seeded generator, so
//! a row changes the same way whatever batch it is in.

use rand::seq::SliceRandom;
use rand::Rng;
use tch::{Kind, Tensor};

/// `RandomResizedCrop`'s bounds: the share of the image's area a crop
/// covers, and its width-to-height ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResizedCrop {
    /// The area share, drawn uniformly (torchvision: 0.08 to 1).
    pub scale: (f64, f64),
    /// The aspect ratio, drawn log-uniformly (torchvision: 3/4 to 4/3).
    pub ratio: (f64, f64),
}

impl Default for ResizedCrop {
    /// torchvision's defaults.
    fn default() -> Self {
        Self { scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }
    }
}

/// `ColorJitter`'s strengths: each factor is drawn from `[max(0, 1 - x),
/// 1 + x]` (the hue shift from `[-hue, hue]`, at most 0.5); 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitter {
    /// Brightness: the image times the factor.
    pub brightness: f64,
    /// Contrast: blended with its mean grey level.
    pub contrast: f64,
    /// Saturation: blended with its grey version.
    pub saturation: f64,
    /// Hue: rotated in HSV space by the shift (a share of the colour circle).
    pub hue: f64,
}

/// A crop: top, left, height, width.
pub type CropBox = (i64, i64, i64, i64);

/// `RandomResizedCrop.get_params`: up to ten draws of an area share and a
/// log-uniform aspect ratio that fit in `h` x `w`, else the largest
/// central crop within the ratio bounds.
pub fn resized_crop_box(h: i64, w: i64, crop: &ResizedCrop, rng: &mut impl Rng) -> CropBox {
    let area = (h * w) as f64;
    let (log_lo, log_hi) = (crop.ratio.0.ln(), crop.ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.random_range(crop.scale.0..=crop.scale.1);
        let aspect = rng.random_range(log_lo..=log_hi).exp();
        let cw = (target * aspect).sqrt().round() as i64;
        let ch = (target / aspect).sqrt().round() as i64;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let top = rng.random_range(0..=h - ch);
            let left = rng.random_range(0..=w - cw);
            return (top, left, ch, cw);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < crop.ratio.0 {
        ((w as f64 / crop.ratio.0).round() as i64, w)
    } else if in_ratio > crop.ratio.1 {
        (h, (h as f64 * crop.ratio.1).round() as i64)
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// The central `size` crop of an `h` x `w` image (`CenterCrop`).
pub fn center_crop_box(h: i64, w: i64, size: [i64; 2]) -> CropBox {
    let (ch, cw) = (size[0].min(h), size[1].min(w));
    (((h - ch) as f64 / 2.0).round() as i64, ((w - cw) as f64 / 2.0).round() as i64, ch, cw)
}

/// The crop `b` of a `[c, h, w]` image.
pub fn crop(img: &Tensor, b: CropBox) -> Tensor {
    img.narrow(1, b.0, b.2).narrow(2, b.1, b.3)
}

/// A `[c, h, w]` image resized to `size` (bilinear, antialiased when
/// shrinking, as torchvision's `Resize` on tensors).
pub fn resize(img: &Tensor, size: [i64; 2]) -> Tensor {
    let s = img.size();
    if s[1] == size[0] && s[2] == size[1] {
        return img.shallow_clone();
    }
    img.unsqueeze(0).internal_upsample_bilinear2d_aa(size, false, None, None).squeeze_dim(0)
}

/// Resizes the shorter side to `shorter` keeping the aspect ratio
/// (`Resize(int)`), as torchvision rounds the longer side down.
pub fn resize_shorter(img: &Tensor, shorter: i64) -> Tensor {
    let s = img.size();
    let (h, w) = (s[1], s[2]);
    let size = if h <= w { [shorter, (shorter as f64 * w as f64 / h as f64) as i64] } else { [(shorter as f64 * h as f64 / w as f64) as i64, shorter] };
    resize(img, size)
}

/// A grey `[1, h, w]` image as RGB `[3, h, w]`; others as they are.
pub fn to_rgb(img: &Tensor) -> Tensor {
    if img.size()[0] == 1 {
        img.expand([3, -1, -1], false).contiguous()
    } else {
        img.shallow_clone()
    }
}

/// ITU-R 601 luma of an RGB image, `[1, h, w]` (torchvision's `rgb_to_grayscale`).
fn grey(img: &Tensor) -> Tensor {
    (img.get(0) * 0.2989 + img.get(1) * 0.587 + img.get(2) * 0.114).unsqueeze(0)
}

/// `ratio * a + (1 - ratio) * b`, clamped to 0-1 (torchvision's `_blend`).
fn blend(a: &Tensor, b: &Tensor, ratio: f64) -> Tensor {
    (a * ratio + b * (1.0 - ratio)).clamp(0.0, 1.0)
}

/// Colour jitter of an RGB `[3, h, w]` image: the four adjustments in a
/// random order, each with a factor drawn from its range.
pub fn jitter(img: &Tensor, j: &ColorJitter, rng: &mut impl Rng) -> Tensor {
    let mut order = [0usize, 1, 2, 3];
    order.shuffle(rng);
    let factor = |x: f64, rng: &mut dyn rand::RngCore| if x > 0.0 { Some(rng.random_range((1.0 - x).max(0.0)..=1.0 + x)) } else { None };
    let mut out = img.shallow_clone();
    for op in order {
        out = match op {
            0 => match factor(j.brightness, rng) {
                Some(f) => blend(&out, &out.zeros_like(), f),
                None => out,
            },
            1 => match factor(j.contrast, rng) {
                Some(f) => {
                    let mean = grey(&out).mean(Kind::Float);
                    blend(&out, &mean.expand_as(&out), f)
                }
                None => out,
            },
            2 => match factor(j.saturation, rng) {
                Some(f) => blend(&out, &grey(&out).expand_as(&out), f),
                None => out,
            },
            _ if j.hue > 0.0 => {
                let shift = rng.random_range(-j.hue..=j.hue);
                adjust_hue(&out, shift)
            }
            _ => out,
        };
    }
    out
}

/// Rotates the hue of an RGB image by `shift` (a share of the colour
/// circle, -0.5 to 0.5), through HSV as torchvision's `adjust_hue`.
pub fn adjust_hue(img: &Tensor, shift: f64) -> Tensor {
    let (r, g, b) = (img.get(0), img.get(1), img.get(2));
    let maxc = img.amax([0], false);
    let minc = img.amin([0], false);
    let eqc = maxc.eq_tensor(&minc);
    let cr = &maxc - &minc;
    let ones = maxc.ones_like();
    let s = &cr / maxc.where_self(&eqc.logical_not(), &ones);
    let cr_divisor = cr.where_self(&eqc.logical_not(), &ones);
    let rc = (&maxc - &r) / &cr_divisor;
    let gc = (&maxc - &g) / &cr_divisor;
    let bc = (&maxc - &b) / &cr_divisor;
    let hr = maxc.eq_tensor(&r).to_kind(Kind::Float) * (&bc - &gc);
    let hg = (maxc.eq_tensor(&g).logical_and(&maxc.ne_tensor(&r))).to_kind(Kind::Float) * (&rc + 2.0 - &bc);
    let hb = (maxc.ne_tensor(&g).logical_and(&maxc.ne_tensor(&r))).to_kind(Kind::Float) * (&gc + 4.0 - &rc);
    let h = ((hr + hg + hb) / 6.0 + 1.0).fmod(1.0);
    let h = (h + shift).remainder(1.0);
    // HSV back to RGB.
    let v = maxc;
    let i = (&h * 6.0).floor();
    let f = &h * 6.0 - &i;
    let i = i.to_kind(Kind::Int64).remainder(6);
    let p = (&v * (-&s + 1.0)).clamp(0.0, 1.0);
    let q = (&v * (-(&s * &f) + 1.0)).clamp(0.0, 1.0);
    let t = (&v * (-(&s * (-&f + 1.0)) + 1.0)).clamp(0.0, 1.0);
    let pick = |a: [&Tensor; 6]| {
        let mut out = a[5].shallow_clone();
        for k in (0..5).rev() {
            out = a[k].where_self(&i.eq(k as i64), &out);
        }
        out
    };
    let r = pick([&v, &q, &p, &p, &t, &v]);
    let g = pick([&t, &v, &v, &q, &p, &p]);
    let b = pick([&p, &p, &t, &v, &v, &q]);
    Tensor::stack(&[r, g, b], 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn resized_crops_stay_within_their_area_and_ratio_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let bounds = ResizedCrop::default();
        let (h, w) = (96, 128);
        for _ in 0..1000 {
            let (top, left, ch, cw) = resized_crop_box(h, w, &bounds, &mut rng);
            assert!(top >= 0 && left >= 0 && top + ch <= h && left + cw <= w);
            let share = (ch * cw) as f64 / (h * w) as f64;
            let ratio = cw as f64 / ch as f64;
            // Rounding to whole pixels moves a crop's share and ratio a little.
            assert!(share >= 0.08 * 0.9 && share <= 1.0, "share {share}");
            assert!(ratio >= 0.75 * 0.9 && ratio <= 4.0 / 3.0 * 1.1 || (ch, cw) == (h, w), "ratio {ratio}");
        }
    }

    #[test]
    fn a_hue_shift_of_a_whole_turn_changes_nothing_and_grey_stays_grey() {
        let img = Tensor::rand([3, 5, 7], (Kind::Float, tch::Device::Cpu));
        let back = adjust_hue(&img, 0.0);
        assert!((back - &img).abs().max().double_value(&[]) < 1e-5, "RGB -> HSV -> RGB is the identity");
        let grey = Tensor::full([3, 2, 2], 0.4, (Kind::Float, tch::Device::Cpu));
        assert!((adjust_hue(&grey, 0.3) - &grey).abs().max().double_value(&[]) < 1e-6);
        // Red shifted by a third of the circle is green.
        let red = Tensor::from_slice(&[1.0f32, 0.0, 0.0]).view([3, 1, 1]);
        let green: Vec<f32> = Vec::try_from(adjust_hue(&red, 1.0 / 3.0).flatten(0, -1)).unwrap();
        assert!((green[0] - 0.0).abs() < 1e-5 && (green[1] - 1.0).abs() < 1e-5 && green[2].abs() < 1e-5, "{green:?}");
    }
}
