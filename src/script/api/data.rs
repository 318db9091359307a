//! `load_dataset`, cleaning, splitting, tokenizing and loaders.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::args::{loader_options, parts_map, split_spec, kfold_options};
use super::handles::{DatasetHandle, ImageDatasetHandle, LoaderHandle, ModelHandle, TokensHandle};
use crate::data::augment::{TextAugment, Thesaurus};
use crate::data::text::{FolderOptions, RawRow};
use crate::data::columnar::{self, Loaded, TableDataset};
use crate::data::{CleanOptions, CsvColumns, DataLoader, DatasetSource, TextDataset, TokenizedDataset};
use crate::script::options::{script_error, Options};
use crate::task::Task;
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

/// The column options shared by `load_dataset` and `dataset`.
fn columns(func: &str, o: &Options) -> R<CsvColumns> {
    let task = Task::parse(&o.choice("task", "classify", Task::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    let label_option = match (o.get("label"), o.get("labels")) {
        (Some(_), Some(_)) => return Err(script_error(format!("{func}: give 'label' or 'labels', not both (they are the same option)"))),
        (label, labels) => label.or(labels),
    };
    let labels = match label_option {
        None => vec!["label".to_string()],
        // label: "" names no label column: rows to predict on.
        Some(v) if v.clone().into_string().is_ok_and(|s| s.is_empty()) => Vec::new(),
        Some(v) if v.is_string() => vec![v.clone().into_string().unwrap()],
        Some(v) if v.is_array() => v
            .clone()
            .into_array()
            .unwrap()
            .into_iter()
            .map(|x| x.into_string().map_err(|t| script_error(format!("{func}: 'label' must hold column names, found a {t}"))))
            .collect::<R<Vec<String>>>()?,
        Some(v) => return Err(script_error(format!("{func}: option 'label' must be a column name or an array of them, got {}", v.type_name()))),
    };
    let labels_named = label_option.is_some();
    let separator = o.string("separator", "|")?;
    if separator.is_empty() {
        return Err(script_error(format!("{func}: option 'separator' must not be empty")));
    }
    if o.get("separator").is_some() && task != Task::MultiLabel {
        return Err(script_error(format!("{func}: 'separator' splits a multi-label column; add task: \"multi_label\"")));
    }
    let pair = o.get("pair").map(|_| o.string("pair", "")).transpose()?;
    let labels_optional = !labels_named && task == Task::Classify;
    Ok(CsvColumns { text: o.string("text", "text")?, labels, task, separator, pair, labels_optional, text_named: o.get("text").is_some(), labels_named })
}

fn load(ctx: &Context, name: &str, opts: Map) -> R<Dynamic> {
    let o = Options::new("load_dataset", opts)?;
    if let Some(chat) = super::sft::load_if_chat(name)? {
        if let Some(key) = ["text", "label", "pair", "task"].iter().find(|k| o.get(k).is_some()) {
            return Err(script_error(format!("load_dataset: {name} holds chat examples ({}); option '{key}' is for labelled text", crate::data::chat::LAYOUTS)));
        }
        return Ok(chat);
    }
    let source = guard(|| DatasetSource::identify(name))?;
    if let DatasetSource::Columnar(name) = source {
        return load_columnar(ctx, name, &o);
    }
    if o.get("stream").is_some() {
        return Err(script_error(format!("load_dataset: stream: true reads Parquet files a chunk at a time; {name} is not Parquet (load it without stream)")));
    }
    if o.get("split").is_some() {
        return Err(script_error(format!("load_dataset: option 'split' picks one split of a dataset saved with splits (a DatasetDict folder, a folder of train-*.parquet and test-*.parquet files); {name} has none: split it with .split(#{{ test: 0.1 }})")));
    }
    if source.is_images() {
        let (text_keys, refusal): (&[&str], &str) = match source {
            DatasetSource::NamedImages(_) => (&["text", "label", "task", "separator"], "is for text files"),
            _ => (&["text", "pair", "label", "task", "separator", "test", "extensions", "recursive"], "is for text"),
        };
        if let Some(key) = text_keys.iter().find(|k| o.get(k).is_some()) {
            let what = if matches!(source, DatasetSource::NamedImages(_)) { format!("'{name}' is an image dataset") } else { format!("{name} is a folder of images") };
            return Err(script_error(format!("load_dataset: {what}; option '{key}' {refusal}")));
        }
        let (test, size) = (o.bool("test", false)?, image_size(&o)?);
        return guard(|| Ok(Dynamic::from(ImageDatasetHandle(std::sync::Arc::new(source.load_images(&ctx.cache, test, size)?)))));
    }
    if o.get("size").is_some() {
        return Err(script_error("load_dataset: option 'size' resizes the images of a folder of images; this is text"));
    }
    if o.get("test").is_some() {
        return Err(script_error(format!("load_dataset: option 'test' picks the test part of an image dataset ({}); split text data with .split(#{{ test: 0.1 }})", crate::data::image::NAMED_IMAGE_DATASETS.join(", "))));
    }
    let cols = columns("load_dataset", &o)?;
    let mut folder = FolderOptions { recursive: o.bool("recursive", false)?, ..FolderOptions::default() };
    if let Some(v) = o.get("extensions") {
        let bad = || script_error("load_dataset: 'extensions' is an array of file extensions, such as [\"txt\", \"md\"]");
        let items = v.clone().into_array().map_err(|_| bad())?;
        folder.extensions = items.into_iter().map(|x| x.into_string().map(|e| e.trim_start_matches('.').to_lowercase()).map_err(|_| bad())).collect::<R<Vec<String>>>()?;
        if folder.extensions.is_empty() {
            return Err(bad());
        }
    }
    guard(|| source.load_text(&cols, &folder, &ctx.cache)).map(|data| Dynamic::from(with_notes_said(ctx, data)))
}

/// A Parquet file or folder, or a `datasets` folder: one dataset (text or
/// chat), or a map of them by split name.
fn load_columnar(ctx: &Context, name: &str, o: &Options) -> R<Dynamic> {
    if let Some(key) = ["test", "size", "extensions", "recursive"].iter().find(|k| o.get(k).is_some()) {
        return Err(script_error(format!("load_dataset: option '{key}' is for image datasets and folders of files; {name} is a table (Parquet or Arrow)")));
    }
    let cols = columns("load_dataset", o)?;
    let split = o.get("split").map(|_| o.string("split", "")).transpose()?;
    if o.bool("stream", false)? {
        return super::streamed::load(ctx, name, &cols, split.as_deref());
    }
    let loaded = guard(|| columnar::load(name, &cols, split.as_deref()))?;
    let text_option = ["text", "label", "labels", "pair", "task", "separator"].into_iter().find(|k| o.get(k).is_some());
    let wrap = |data: TableDataset| -> R<Dynamic> {
        match data {
            TableDataset::Text(text) => Ok(Dynamic::from(with_notes_said(ctx, text))),
            TableDataset::Chat(chat) => match text_option {
                Some(key) => Err(script_error(format!("load_dataset: {name} holds chat examples ({}); option '{key}' is for labelled text", crate::data::chat::LAYOUTS))),
                None => Ok(Dynamic::from(super::sft::ChatDatasetHandle(Rc::new(chat)))),
            },
        }
    };
    match loaded {
        Loaded::One(data) => wrap(data),
        Loaded::Splits(parts) => {
            let mut map = Map::new();
            for (split, data) in parts {
                map.insert(split.into(), wrap(data)?);
            }
            Ok(Dynamic::from(map))
        }
    }
}

/// Says what loading left out or repaired, then wraps the dataset.
fn with_notes_said(ctx: &Context, data: TextDataset) -> DatasetHandle {
    for note in &data.notes {
        ctx.host.eprint(&format!("note: {note}"));
    }
    DatasetHandle(Rc::new(data))
}

/// `size: 32` or `size: [height, width]`, for a folder of images.
fn image_size(o: &Options) -> R<Option<(usize, usize)>> {
    let bad = || script_error("load_dataset: 'size' is a side in pixels (size: 32) or [height, width] (size: [28, 28]), each from 4 to 1024");
    let side = |v: &Dynamic| v.as_int().ok().filter(|n| (4..=1024).contains(n)).map(|n| n as usize).ok_or_else(bad);
    match o.get("size") {
        None => Ok(None),
        Some(v) if v.is_int() => side(v).map(|n| Some((n, n))),
        Some(v) => match v.clone().try_cast::<Array>() {
            Some(a) if a.len() == 2 => Ok(Some((side(&a[0])?, side(&a[1])?))),
            _ => Err(bad()),
        },
    }
}

/// EDA's operation strengths from options; at least one must be on.
fn text_augment_options(func: &str, a: &Options, p: f64) -> R<TextAugment> {
    let aug = TextAugment {
        synonyms: a.float("synonyms", 0.0, 0.0, 1.0)?,
        insert: a.float("insert", 0.0, 0.0, 1.0)?,
        swap: a.float("swap", 0.0, 0.0, 1.0)?,
        delete: a.float("delete", 0.0, 0.0, 1.0)?,
        p,
    };
    if aug.operations().is_empty() {
        return Err(script_error(format!("{func}: turn on at least one of synonyms, insert, swap, delete (each the share of words to change, e.g. 0.1)")));
    }
    Ok(aug)
}

/// A label value written as a cell (see `TextDataset::from_cells`).
fn dynamic_cell(v: &Dynamic, separator: &str) -> String {
    if v.is_unit() {
        String::new()
    } else if let Some(items) = v.read_lock::<Array>() {
        items.iter().map(|x| dynamic_cell(x, separator)).collect::<Vec<_>>().join(separator)
    } else {
        v.to_string().trim().to_string()
    }
}

/// `dataset(rows, opts)`: a dataset from an array of maps.
fn from_rows(ctx: &Context, rows: Array, opts: Map) -> R<DatasetHandle> {
    let o = Options::new("dataset", opts)?;
    let cols = columns("dataset", &o)?;
    let mut cells = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let type_name = row.type_name();
        let map = row.try_cast::<Map>().ok_or_else(|| script_error(format!("dataset: row {} must be a map like #{{ text: \"...\", label: \"...\" }}, got {type_name}", i + 1)))?;
        let field = |name: &str| map.get(name).ok_or_else(|| script_error(format!("dataset: row {} has no '{name}'; it has {}", i + 1, map.keys().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))));
        let text = field(&cols.text)?;
        let text = match text.read_lock::<Array>() {
            // Pre-split words (token classification).
            Some(words) => words.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(" "),
            None => text.clone().into_string().map_err(|t| script_error(format!("dataset: row {}: '{}' must be a string (or an array of words), got {t}", i + 1, cols.text)))?,
        };
        let labels = cols.labels.iter().map(|l| field(l).map(|v| dynamic_cell(v, &cols.separator))).collect::<R<Vec<String>>>()?;
        let pair = cols.pair.as_deref().map(|p| field(p).map(|v| v.to_string())).transpose()?;
        cells.push(RawRow { text, pair, cells: labels, line: i as u64 + 1 });
    }
    Ok(with_notes_said(ctx, guard(|| TextDataset::from_cells(Path::new("rows"), cells, &cols, None))?))
}

/// Text datasets: loading, cleaning, splitting and looking at them, then
/// tokenizing and batching.
pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    let c = ctx.clone();
    engine.register_fn("dataset", move |rows: Array| -> R<Dynamic> {
        if let Some(chat) = super::sft::rows_if_chat(&rows)? {
            return Ok(chat);
        }
        from_rows(&c, rows, Map::new()).map(Dynamic::from)
    });
    let c = ctx.clone();
    engine.register_fn("dataset", move |rows: Array, opts: Map| from_rows(&c, rows, opts));
    engine.register_type_with_name::<DatasetHandle>("Dataset");
    engine.register_type_with_name::<TokensHandle>("TokenizedDataset");
    engine.register_type_with_name::<LoaderHandle>("Loader");

    let c = ctx.clone();
    engine.register_fn("load_dataset", move |name: &str| load(&c, name, Map::new()));
    let c = ctx.clone();
    engine.register_fn("load_dataset", move |name: &str, opts: Map| load(&c, name, opts));

    let c = ctx.clone();
    engine.register_fn("clean", move |d: &mut DatasetHandle| {
        let (cleaned, report) = d.0.clean();
        c.host.print(&report.to_string());
        DatasetHandle(Rc::new(cleaned))
    });
    let c = ctx.clone();
    engine.register_fn("clean", move |d: &mut DatasetHandle, opts: Map| -> R<DatasetHandle> {
        let o = Options::new("clean", opts)?;
        let d0 = CleanOptions::default();
        let options = CleanOptions {
            strip_html: o.bool("strip_html", d0.strip_html)?,
            unicode: o.bool("unicode", d0.unicode)?,
            lowercase: o.bool("lowercase", d0.lowercase)?,
            min_chars: o.int("min_chars", d0.min_chars as i64, 1, i64::MAX)? as usize,
            max_chars: o.opt_int("max_chars", 1, i64::MAX)?.map(|n| n as usize),
            dedupe: o.bool("dedupe", d0.dedupe)?,
        };
        if let Some(max) = options.max_chars.filter(|&m| m < options.min_chars) {
            return Err(script_error(format!("clean: max_chars ({max}) is below min_chars ({})", options.min_chars)));
        }
        let (cleaned, report) = d.0.clean_with(&options);
        if cleaned.is_empty() {
            return Err(script_error(format!("clean: no rows left ({report}); loosen min_chars or max_chars")));
        }
        c.host.print(&report.to_string());
        Ok(DatasetHandle(Rc::new(cleaned)))
    });
    let c = ctx.clone();
    engine.register_fn("split", move |d: &mut DatasetHandle, opts: Map| -> R<Map> {
        let spec = split_spec(&c, opts)?;
        let parts = guard(|| d.0.split_parts(&spec))?;
        for (name, part) in [("val", Some(&parts.1)), ("test", parts.2.as_ref())] {
            let shared = part.map_or(0, |p| parts.0.rows_also_in(p));
            if let Some(part) = part.filter(|_| shared > 0) {
                c.host.eprint(&format!(
                    "note: {shared} of the {} {name} rows ({}) have the same text as a train row, so {name} scores overstate; .clean() before .split() drops duplicates",
                    part.len(),
                    crate::numbers::percent(shared as i64, part.len() as i64)
                ));
            }
        }
        Ok(parts_map(parts, |d| Dynamic::from(DatasetHandle(Rc::new(d)))))
    });
    let c = ctx.clone();
    engine.register_fn("kfold", move |d: &mut DatasetHandle, opts: Map| -> R<Array> {
        let (k, seed, stratify) = kfold_options(&c, opts)?;
        let folds = guard(|| d.0.kfold(k, seed, stratify))?;
        Ok(folds.into_iter().map(|(train, val)| Dynamic::from(parts_map((train, val, None), |d| Dynamic::from(DatasetHandle(Rc::new(d)))))).collect())
    });
    engine.register_fn("take", |d: &mut DatasetHandle, n: i64| DatasetHandle(Rc::new(d.0.take(n.max(0) as usize))));
    engine.register_fn("shuffle", |d: &mut DatasetHandle, seed: i64| DatasetHandle(Rc::new(d.0.shuffle(seed as u64))));
    engine.register_fn("len", |d: &mut DatasetHandle| d.0.len() as i64);
    engine.register_fn("labels", |d: &mut DatasetHandle| -> Map {
        d.0.class_counts().into_iter().map(|(l, n)| (l.into(), Dynamic::from(n as i64))).collect()
    });
    engine.register_fn("majority", |d: &mut DatasetHandle| -> Dynamic {
        let single_label = d.0.task() == Task::Classify;
        single_label.then(|| crate::data::majority_share(&d.0.class_counts())).flatten().map_or(Dynamic::UNIT, Dynamic::from)
    });
    engine.register_fn("head", |d: &mut DatasetHandle, n: i64| -> Array {
        d.0.texts
            .iter()
            .take(n.max(0) as usize)
            .enumerate()
            .map(|(i, t)| {
                let mut m = Map::new();
                m.insert("text".into(), t.clone().into());
                if let Some(pairs) = &d.0.pairs {
                    m.insert("pair".into(), pairs[i].clone().into());
                }
                m.insert("label".into(), d.0.targets.describe_row(i, &d.0.label_names).into());
                Dynamic::from(m)
            })
            .collect()
    });
    engine.register_fn("to_string", |d: &mut DatasetHandle| d.0.to_string());
    engine.register_fn("to_debug", |d: &mut DatasetHandle| d.0.to_string());
    register_tokens_and_loaders(engine, ctx);
}

/// `tokenize`, `loader` and `augment_text`.
fn register_tokens_and_loaders(engine: &mut Engine, ctx: &Rc<Context>) {
    let tokenize = |d: &mut DatasetHandle, m: ModelHandle, opts: Map| -> R<TokensHandle> {
        let o = Options::new("tokenize", opts)?;
        let max_len = o.int("max_len", 128, 2, 100_000)? as usize;
        let model = m.0.borrow();
        if max_len as i64 > model.config.max_position_embeddings {
            return Err(crate::script::script_error(format!(
                "tokenize: max_len {max_len} is longer than the model's {} positions",
                model.config.max_position_embeddings
            )));
        }
        guard(|| Ok(TokensHandle(std::sync::Arc::new(TokenizedDataset::for_head(&d.0, &model.tokenizer, max_len, &model.labels)?))))
    };
    engine.register_fn("tokenize", tokenize);
    engine.register_fn("tokenize", move |d: &mut DatasetHandle, m: ModelHandle| tokenize(d, m, Map::new()));
    engine.register_fn("len", |t: &mut TokensHandle| t.0.len() as i64);
    engine.register_fn("to_string", |t: &mut TokensHandle| {
        format!("TokenizedDataset {} ({} rows, max_len {}, {} truncated)", t.0.name, t.0.len(), t.0.max_len, t.0.truncated)
    });

    let c = ctx.clone();
    engine.register_fn("augment_text", move |text: &str, opts: Map| -> R<String> {
        let a = Options::new("augment_text", opts)?;
        let aug = text_augment_options("augment_text", &a, 1.0)?;
        let seed = a.int("seed", c.seed.get() as i64, 0, i64::MAX)? as u64;
        let thesaurus = guard(|| Thesaurus::cached(&c.cache))?;
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        Ok(aug.augment(text, &thesaurus, &mut rng))
    });
    let c = ctx.clone();
    let make_loader = move |t: &mut TokensHandle, opts: Map| -> R<LoaderHandle> {
        let o = Options::new("loader", opts)?;
        if o.get("normalize").is_some() {
            return Err(script_error("loader: option 'normalize' is for image datasets; text is tokenized instead"));
        }
        let options = loader_options(&c, &o)?;
        let text_augment = match o.get("augment") {
            None => None,
            Some(v) => {
                let map = v.clone().try_cast::<Map>().ok_or_else(|| script_error("loader: 'augment' for text is a map like #{ synonyms: 0.1, insert: 0.1, swap: 0.1, delete: 0.1, p: 0.5 }"))?;
                let a = Options::new("augment (text)", map)?;
                let p = a.float("p", 0.5, 0.0, 1.0)?;
                let aug = text_augment_options("augment (text)", &a, p)?;
                if t.0.task() == Task::Tokens {
                    return Err(script_error("augment (text): EDA changes the words, which would break a tag per word; token data cannot be augmented this way"));
                }
                Some((aug, guard(|| Thesaurus::cached(&c.cache))?))
            }
        };
        if options.packing && text_augment.is_some() {
            return Err(script_error("loader: 'augment' rewrites texts, which would change the packed rows' lengths; give packing or augment, not both"));
        }
        guard(|| {
            let mut loader = DataLoader::new(t.0.clone(), options)?;
            loader.text_augment = text_augment;
            Ok(LoaderHandle(loader))
        })
    };
    let ml = make_loader.clone();
    engine.register_fn("loader", make_loader);
    engine.register_fn("loader", move |t: &mut TokensHandle| ml(t, Map::new()));
    engine.register_fn("len", |l: &mut LoaderHandle| l.0.len() as i64);
    engine.register_fn("to_string", |l: &mut LoaderHandle| {
        format!("Loader over {} ({} rows, {} batches of {})", l.0.name(), l.0.rows(), l.0.len(), l.0.options.batch_size)
    });
}
