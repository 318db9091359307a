//! Image datasets, their loaders, and the small image networks.

use std::rc::Rc;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::args::{kfold_options, loader_options, parts_map, split_spec};
use super::handles::{ImageDatasetHandle, ImageModelHandle, LoaderHandle};
use crate::data::image::{Augment, ImageDataset, ImageSet, ImageTransform};
use crate::data::transforms::{ColorJitter, ResizedCrop};
use crate::data::{DataLoader, LoaderSource};
use crate::model::{ImageArch, ImageModel, ImageSpec, Learner, Task};
use crate::runtime::{resolve_device, DeviceRequest};
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

fn wrap(d: ImageDataset) -> Dynamic {
    Dynamic::from(ImageDatasetHandle(Arc::new(d)))
}

fn floats(func: &str, key: &str, v: &Dynamic) -> R<Vec<f32>> {
    let bad = || script_error(format!("{func}: '{key}' must be an array of numbers, one per channel"));
    v.clone().into_array().map_err(|_| bad())?.into_iter().map(|x| x.as_float().map(|f| f as f32).or_else(|_| x.as_int().map(|i| i as f32)).map_err(|_| bad())).collect()
}

/// `images.loader(#{ batch, shuffle, seed, drop_last, normalize, augment })`.
fn image_loader(ctx: &Context, d: &ImageDatasetHandle, opts: Map) -> R<LoaderHandle> {
    let o = Options::new("loader", opts)?;
    if o.get("bucket").is_some() {
        return Err(script_error("loader: 'bucket' groups texts by length; images all have one size"));
    }
    let options = loader_options(ctx, &o)?;
    // With `model`, images become what it reads: its size, its channels and its normalization.
    let model = match o.get("model") {
        None => None,
        Some(v) => Some(v.clone().try_cast::<ImageModelHandle>().ok_or_else(|| script_error(format!("loader: 'model' is the image model the batches are for, got {}", v.type_name())))?),
    };
    let model_input = model.as_ref().map(|m| m.0.borrow().spec.input);
    let model_normalize = model.as_ref().and_then(|m| m.0.borrow().spec.normalize.clone());
    let channels = model_input.map_or(d.0.shape[0], |i| i[0] as usize);
    let normalize = match o.get("normalize") {
        None => Some(model_normalize.unwrap_or_else(|| d.0.stats.clone())),
        Some(v) if v.is_bool() => v.as_bool().unwrap().then(|| d.0.stats.clone()),
        Some(v) => {
            let map = v.clone().try_cast::<Map>().ok_or_else(|| script_error("loader: 'normalize' is true, false, or #{ mean: [...], std: [...] }"))?;
            let (mean, std) = (map.get("mean"), map.get("std"));
            let (Some(mean), Some(std)) = (mean, std) else { return Err(script_error("loader: 'normalize' needs both mean and std")) };
            let (mean, std) = (floats("loader", "mean", mean)?, floats("loader", "std", std)?);
            if mean.len() != channels || std.len() != channels {
                return Err(script_error(format!("loader: these images have {channels} channel(s); give mean and std with {channels} value(s) each")));
            }
            if std.iter().any(|&s| s <= 0.0) {
                return Err(script_error("loader: every std must be above 0"));
            }
            Some((mean, std))
        }
    };
    let augment = match o.get("augment") {
        None => Augment::default(),
        Some(v) => {
            let map = v.clone().try_cast::<Map>().ok_or_else(|| script_error("loader: 'augment' is a map like #{ crop: 2, flip: true }"))?;
            let a = Options::new("augment (images)", map)?;
            Augment {
                crop_padding: a.int("crop", 0, 0, 64)? as usize,
                flip: a.bool("flip", false)?,
                rotate: a.float("rotate", 0.0, 0.0, 45.0)?,
                resized_crop: resized_crop_option(a.get("resized_crop"))?,
                color_jitter: color_jitter_option(a.get("color_jitter"))?,
            }
        }
    };
    let size = match o.get("size") {
        None => None,
        Some(v) => {
            let side = |x: &Dynamic| x.as_int().ok().filter(|n| (8..=4096).contains(n));
            let bad = || script_error("loader: 'size' is a side in pixels (8 to 4096) or [height, width]");
            Some(match v.clone().try_cast::<Array>() {
                Some(a) if a.len() == 2 => [side(&a[0]).ok_or_else(bad)?, side(&a[1]).ok_or_else(bad)?],
                Some(_) => return Err(bad()),
                None => [side(v).ok_or_else(bad)?; 2],
            })
        }
    };
    let transform = match (model_input, size) {
        (Some(_), Some(_)) => return Err(script_error("loader: give 'model' (its input size is used) or 'size', not both")),
        (Some(input), None) => guard(|| ImageTransform::fitted(d.0.shape, input, normalize, augment))?,
        (None, Some([h, w])) => guard(|| ImageTransform::fitted(d.0.shape, [d.0.shape[0] as i64, h, w], normalize, augment))?,
        (None, None) if augment.resized_crop.is_some() => guard(|| ImageTransform::fitted(d.0.shape, d.0.shape.map(|x| x as i64), normalize, augment))?,
        (None, None) => ImageTransform::new(normalize, augment),
    };
    let set = ImageSet { data: d.0.clone(), transform };
    guard(|| Ok(LoaderHandle(DataLoader::over(LoaderSource::Images(Arc::new(set)), options)?)))
}

/// `resized_crop`: true (torchvision's bounds) or `#{ scale: [lo, hi], ratio: [lo, hi] }`.
fn resized_crop_option(v: Option<&Dynamic>) -> R<Option<ResizedCrop>> {
    let bad = || script_error("augment: 'resized_crop' is true, or #{ scale: [0.08, 1.0], ratio: [0.75, 1.333] } (the area share and the aspect ratio)");
    let pair = |m: &Map, key: &str, default: (f64, f64), max: f64| -> R<(f64, f64)> {
        match m.get(key) {
            None => Ok(default),
            Some(x) => {
                let f = floats("augment", key, x).map_err(|_| bad())?;
                match f.as_slice() {
                    [lo, hi] if 0.0 < *lo && lo <= hi && f64::from(*hi) <= max => Ok((f64::from(*lo), f64::from(*hi))),
                    _ => Err(bad()),
                }
            }
        }
    };
    Ok(match v {
        None => None,
        Some(x) if x.is_bool() => x.as_bool().unwrap().then(ResizedCrop::default),
        Some(x) => {
            let m = x.clone().try_cast::<Map>().ok_or_else(bad)?;
            if let Some(k) = m.keys().find(|k| !["scale", "ratio"].contains(&k.as_str())) {
                return Err(script_error(format!("augment: resized_crop has no option '{k}'; valid: scale, ratio")));
            }
            let d = ResizedCrop::default();
            Some(ResizedCrop { scale: pair(&m, "scale", d.scale, 1.0)?, ratio: pair(&m, "ratio", d.ratio, 100.0)? })
        }
    })
}

/// `color_jitter`: one strength for brightness, contrast and saturation, or
/// `#{ brightness, contrast, saturation, hue }`.
fn color_jitter_option(v: Option<&Dynamic>) -> R<Option<ColorJitter>> {
    let Some(x) = v else { return Ok(None) };
    if let Ok(f) = x.as_float().or_else(|_| x.as_int().map(|i| i as f64)) {
        if !(0.0..=1.0).contains(&f) {
            return Err(script_error(format!("augment: color_jitter must be 0 to 1, got {f}")));
        }
        return Ok(Some(ColorJitter { brightness: f, contrast: f, saturation: f, hue: 0.0 }));
    }
    let m = x.clone().try_cast::<Map>().ok_or_else(|| script_error("augment: 'color_jitter' is a strength (0.4) or #{ brightness, contrast, saturation, hue }"))?;
    let a = Options::new("color_jitter", m)?;
    Ok(Some(ColorJitter { brightness: a.float("brightness", 0.0, 0.0, 1.0)?, contrast: a.float("contrast", 0.0, 0.0, 1.0)?, saturation: a.float("saturation", 0.0, 0.0, 1.0)?, hue: a.float("hue", 0.0, 0.0, 0.5)? }))
}

/// `image_model(...)`: options, with input and labels from `data` if given.
fn image_model(ctx: &Context, data: Option<&ImageDatasetHandle>, opts: Map) -> R<ImageModelHandle> {
    let o = Options::new("image_model", opts)?;
    let arch = ImageArch::parse(&o.choice("arch", "cnn", ImageArch::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    let default_widths: &[i64] = if arch == ImageArch::Cnn { &[32, 64] } else { &[256] };
    let ints = |key: &str| -> R<Option<Vec<i64>>> {
        o.get(key)
            .map(|v| {
                let bad = || script_error(format!("image_model: '{key}' must be an array of whole numbers"));
                v.clone().into_array().map_err(|_| bad())?.into_iter().map(|x| x.as_int().map_err(|_| bad())).collect()
            })
            .transpose()
    };
    let widths = ints("layers")?.unwrap_or_else(|| default_widths.to_vec());
    let input: [i64; 3] = match (ints("input")?, data) {
        (Some(v), _) => v.try_into().map_err(|v: Vec<i64>| script_error(format!("image_model: 'input' is [channels, height, width], got {} numbers", v.len())))?,
        (None, Some(d)) => d.0.shape.map(|x| x as i64),
        (None, None) => return Err(script_error("image_model: give the images' 'input' shape [channels, height, width], or pass the dataset first: image_model(data, #{ ... })")),
    };
    let task = Task::parse(&o.choice("task", "classify", Task::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    let labels: Vec<String> = match (o.get("labels"), data) {
        (Some(v), _) if v.is_int() => (0..v.as_int().unwrap().max(0)).map(|i| format!("LABEL_{i}")).collect(),
        (Some(v), _) => v.clone().into_array().map_err(|_| script_error("image_model: 'labels' is a count or an array of names"))?.into_iter().map(|x| x.to_string()).collect(),
        (None, Some(d)) => d.0.label_names.clone(),
        (None, None) => return Err(script_error("image_model: give the 'labels' (a count or names), or pass the dataset first")),
    };
    let device = match o.get("device") {
        None => ctx.device.get(),
        Some(_) => {
            let req: DeviceRequest = o.choice("device", "auto", &["auto", "cpu", "cuda"])?.parse().map_err(|e: anyhow::Error| script_error(e.to_string()))?;
            guard(|| resolve_device(req))?
        }
    };
    let spec = ImageSpec { arch, input, widths, dropout: o.float("dropout", 0.25, 0.0, 0.99)?, normalize: None };
    guard(|| Ok(ImageModelHandle::new(ImageModel::new(arch.name(), spec, labels, task, device)?)))
}

fn prediction_maps(model: &ImageModelHandle, d: &ImageDatasetHandle) -> R<Array> {
    // As the model's training inputs were normalized; else by the images' own statistics.
    let (normalize, input) = {
        let m = model.0.borrow();
        (m.spec.normalize.clone().unwrap_or_else(|| d.0.stats.clone()), m.spec.input)
    };
    let transform = guard(|| ImageTransform::fitted(d.0.shape, input, Some(normalize), Augment::default()))?;
    let set = ImageSet { data: d.0.clone(), transform };
    let options = crate::data::LoaderOptions { batch_size: 64, ..Default::default() };
    let preds = guard(|| {
        let loader = DataLoader::over(LoaderSource::Images(Arc::new(set)), options)?;
        crate::inference::predict_loader(&*model.0.borrow(), &loader)
    })?;
    Ok(preds.into_iter().map(|p| super::train::prediction_map(p, None, Default::default())).collect())
}

/// `predict(model, path, #{ top_k })`: an image file (a map) or a folder
/// of them (an array, in name order), each with `file`, `label`, `score`
/// and the `top_k` best classes (5 by default); `scores` for every class
/// when there are at most 20.
fn predict_files(model: &ImageModelHandle, path: &str, opts: Map) -> R<Dynamic> {
    let o = Options::new("predict (images)", opts)?;
    let top_k = o.int("top_k", 5, 0, 1000)? as usize;
    let p = std::path::Path::new(path);
    let files: Vec<std::path::PathBuf> = if p.is_dir() {
        let mut f: Vec<_> = guard(|| Ok(std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|f| crate::data::image::is_image_file(f)).collect()))?;
        f.sort();
        if f.is_empty() {
            return Err(script_error(format!("predict: {path} holds no .png, .jpg or .jpeg files")));
        }
        f
    } else if p.is_file() {
        vec![p.to_path_buf()]
    } else {
        return Err(script_error(format!("predict: {path} is neither an image file nor a folder")));
    };
    let model = model.0.borrow();
    let preds = guard(|| crate::inference::predict_image_files(&model, &files))?;
    let many = model.labels.len() > 20;
    let maps: Array = preds
        .into_iter()
        .zip(&files)
        .map(|(pred, file)| {
            let mut m = super::train::prediction_map(pred, None, super::train::Reporting { top_k, ..Default::default() }).cast::<Map>();
            if many {
                m.remove("scores");
            }
            m.insert("file".into(), file.display().to_string().into());
            Dynamic::from(m)
        })
        .collect();
    Ok(if p.is_dir() { Dynamic::from(maps) } else { maps.into_iter().next().unwrap_or(Dynamic::UNIT) })
}

/// `model.new_head(labels)`: labels as a count, names, or an image dataset's classes.
fn new_head(m: &mut ImageModelHandle, labels: Dynamic) -> R<()> {
    let names: Vec<String> = if let Some(d) = labels.clone().try_cast::<ImageDatasetHandle>() {
        d.0.label_names.clone()
    } else if let Ok(n) = labels.as_int() {
        (0..n.max(0)).map(|i| format!("LABEL_{i}")).collect()
    } else {
        labels.into_array().map_err(|_| script_error("new_head: give the labels as a count, an array of names, or an image dataset"))?.into_iter().map(|x| x.to_string()).collect()
    };
    guard(|| m.0.borrow_mut().new_head(names))
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_fn("new_head", new_head);
    engine.register_type_with_name::<ImageDatasetHandle>("ImageDataset");
    engine.register_type_with_name::<ImageModelHandle>("ImageModel");

    engine.register_fn("len", |d: &mut ImageDatasetHandle| d.0.len() as i64);
    engine.register_fn("labels", |d: &mut ImageDatasetHandle| -> Map { d.0.class_counts().into_iter().map(|(l, n)| (l.into(), Dynamic::from(n as i64))).collect() });
    engine.register_fn("majority", |d: &mut ImageDatasetHandle| -> Dynamic { crate::data::majority_share(&d.0.class_counts()).map_or(Dynamic::UNIT, Dynamic::from) });
    engine.register_fn("take", |d: &mut ImageDatasetHandle, n: i64| wrap(d.0.take(n.max(0) as usize)));
    engine.register_fn("shuffle", |d: &mut ImageDatasetHandle, seed: i64| wrap(d.0.shuffle(seed as u64)));
    engine.register_fn("stats", |d: &mut ImageDatasetHandle| -> Map {
        let to_array = |v: &[f32]| Dynamic::from(v.iter().map(|&x| Dynamic::from(f64::from(x))).collect::<Array>());
        let mut m = Map::new();
        m.insert("mean".into(), to_array(&d.0.stats.0));
        m.insert("std".into(), to_array(&d.0.stats.1));
        m
    });
    let c = ctx.clone();
    engine.register_fn("split", move |d: &mut ImageDatasetHandle, opts: Map| -> R<Map> {
        let spec = split_spec(&c, opts)?;
        let parts = guard(|| d.0.split_parts(&spec))?;
        Ok(parts_map(parts, wrap))
    });
    let c = ctx.clone();
    engine.register_fn("kfold", move |d: &mut ImageDatasetHandle, opts: Map| -> R<Array> {
        let (k, seed, stratify) = kfold_options(&c, opts)?;
        let folds = guard(|| d.0.kfold(k, seed, stratify))?;
        Ok(folds.into_iter().map(|(train, val)| Dynamic::from(parts_map((train, val, None), wrap))).collect())
    });
    let c = ctx.clone();
    engine.register_fn("loader", move |d: &mut ImageDatasetHandle, opts: Map| image_loader(&c, d, opts));
    let c = ctx.clone();
    engine.register_fn("loader", move |d: &mut ImageDatasetHandle| image_loader(&c, d, Map::new()));
    engine.register_fn("to_string", |d: &mut ImageDatasetHandle| d.0.to_string());
    engine.register_fn("to_debug", |d: &mut ImageDatasetHandle| d.0.to_string());

    let c = ctx.clone();
    engine.register_fn("image_model", move |d: ImageDatasetHandle, opts: Map| image_model(&c, Some(&d), opts));
    let c = ctx.clone();
    engine.register_fn("image_model", move |d: ImageDatasetHandle| image_model(&c, Some(&d), Map::new()));
    let c = ctx.clone();
    engine.register_fn("image_model", move |opts: Map| image_model(&c, None, opts));
    engine.register_fn("predict", |m: ImageModelHandle, d: ImageDatasetHandle| prediction_maps(&m, &d));
    let c = ctx.clone();
    engine.register_fn("photo", move |name: &str| -> R<String> {
        // The bootstrap's sample photographs (from scikit-image's wheel), by name.
        let dir = c.cache.join("datasets/photos");
        let names = ["chelsea", "coffee", "rocket", "motorcycle_left", "astronaut"];
        let file = ["png", "jpg"].iter().map(|e| dir.join(format!("{name}.{e}"))).find(|p| p.is_file());
        match file {
            Some(p) => Ok(p.display().to_string()),
            None if !dir.is_dir() => Err(script_error(format!("photo: the sample photographs are not in the cache {}; run scripts/bootstrap", c.cache.display()))),
            None => Err(script_error(format!("photo: no sample photograph '{name}'; there are {} (chelsea is a cat)", names.join(", ")))),
        }
    });
    engine.register_fn("predict", |m: ImageModelHandle, path: &str| predict_files(&m, path, Map::new()));
    engine.register_fn("logits", |m: &mut ImageModelHandle, x: super::handles::TensorHandle| -> R<super::handles::TensorHandle> {
        // Evaluation mode: BatchNorm's running statistics, no dropout.
        let model = m.0.borrow();
        let x = x.0.to_kind(tch::Kind::Float).to_device(model.device());
        let out = guard(|| tch::no_grad(|| model.forward(&crate::data::Inputs::Images(x), false)))?;
        Ok(super::handles::TensorHandle(out.to_device(tch::Device::Cpu)))
    });
    engine.register_fn("predict", |m: ImageModelHandle, path: &str, opts: Map| predict_files(&m, path, opts));
    engine.register_get("name", |m: &mut ImageModelHandle| m.0.borrow().name.clone());
    engine.register_get("device", |m: &mut ImageModelHandle| crate::runtime::device_name(m.0.borrow().device()));
    engine.register_fn("to_string", |m: &mut ImageModelHandle| m.0.borrow().to_string());
    engine.register_fn("to_debug", |m: &mut ImageModelHandle| m.0.borrow().to_string());
}
