//! `load_dataset`, cleaning, splitting, tokenizing and loaders.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::ModelHandle;
use crate::data::{CsvColumns, DataLoader, LoaderOptions, TextDataset, TokenizedDataset};
use crate::script::options::{script_error, Options};
use crate::task::Task;
use crate::script::{guard, Context};

/// A dataset of labelled texts.
#[derive(Clone)]
pub(crate) struct DatasetHandle(pub Rc<TextDataset>);

/// A tokenized dataset, ready for a loader.
#[derive(Clone)]
pub(crate) struct TokensHandle(pub Rc<TokenizedDataset>);

/// Batches of a tokenized dataset.
#[derive(Clone)]
pub(crate) struct LoaderHandle(pub DataLoader);

type R<T> = Result<T, Box<EvalAltResult>>;

fn load(ctx: &Context, name: &str, opts: Map) -> R<DatasetHandle> {
    let o = Options::new("load_dataset", opts)?;
    let task = Task::parse(&o.choice("task", "classify", Task::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    let labels = match o.get("label") {
        None => vec!["label".to_string()],
        Some(v) if v.is_string() => vec![v.clone().into_string().unwrap()],
        Some(v) if v.is_array() => v
            .clone()
            .into_array()
            .unwrap()
            .into_iter()
            .map(|x| x.into_string().map_err(|t| script_error(format!("load_dataset: 'label' must hold column names, found a {t}"))))
            .collect::<R<Vec<String>>>()?,
        Some(v) => return Err(script_error(format!("load_dataset: option 'label' must be a column name or an array of them, got {}", v.type_name()))),
    };
    let separator = o.string("separator", "|")?;
    if separator.is_empty() {
        return Err(script_error("load_dataset: option 'separator' must not be empty"));
    }
    if o.get("separator").is_some() && task != Task::MultiLabel {
        return Err(script_error("load_dataset: 'separator' splits a multi-label column; add task: \"multi_label\""));
    }
    let cols = CsvColumns { text: o.string("text", "text")?, labels, task, separator };
    guard(|| {
        let path = Path::new(name);
        let data = if crate::data::NAMED_DATASETS.contains(&name) {
            if task != Task::Classify {
                anyhow::bail!("'{name}' is labelled for classification; task: \"{}\" needs a CSV file with such labels", task.name());
            }
            TextDataset::named(name, &ctx.cache)?
        } else if path.is_file() {
            TextDataset::from_csv(path, &cols)?
        } else {
            anyhow::bail!("no dataset '{name}': it is neither a named dataset ({}) nor a CSV file", crate::data::NAMED_DATASETS.join(", "))
        };
        Ok(DatasetHandle(Rc::new(data)))
    })
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
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
    engine.register_fn("split", move |d: &mut DatasetHandle, opts: Map| -> R<Map> {
        let o = Options::new("split", opts)?;
        let val = o.float("val", 0.2, 0.0, 1.0)?;
        let seed = o.int("seed", c.seed.get() as i64, 0, i64::MAX)? as u64;
        let (train, val) = guard(|| d.0.split(val, seed))?;
        let mut m = Map::new();
        m.insert("train".into(), Dynamic::from(DatasetHandle(Rc::new(train))));
        m.insert("val".into(), Dynamic::from(DatasetHandle(Rc::new(val))));
        Ok(m)
    });
    engine.register_fn("take", |d: &mut DatasetHandle, n: i64| DatasetHandle(Rc::new(d.0.take(n.max(0) as usize))));
    engine.register_fn("shuffle", |d: &mut DatasetHandle, seed: i64| DatasetHandle(Rc::new(d.0.shuffle(seed as u64))));
    engine.register_fn("len", |d: &mut DatasetHandle| d.0.len() as i64);
    engine.register_fn("labels", |d: &mut DatasetHandle| -> Map {
        d.0.class_counts().into_iter().map(|(l, n)| (l.into(), Dynamic::from(n as i64))).collect()
    });
    engine.register_fn("head", |d: &mut DatasetHandle, n: i64| -> Array {
        d.0.texts
            .iter()
            .take(n.max(0) as usize)
            .enumerate()
            .map(|(i, t)| {
                let mut m = Map::new();
                m.insert("text".into(), t.clone().into());
                m.insert("label".into(), d.0.targets.describe_row(i, &d.0.label_names).into());
                Dynamic::from(m)
            })
            .collect()
    });
    engine.register_fn("to_string", |d: &mut DatasetHandle| d.0.to_string());
    engine.register_fn("to_debug", |d: &mut DatasetHandle| d.0.to_string());

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
        guard(|| Ok(TokensHandle(Rc::new(TokenizedDataset::new(&d.0, &model.tokenizer, max_len)?))))
    };
    engine.register_fn("tokenize", tokenize);
    engine.register_fn("tokenize", move |d: &mut DatasetHandle, m: ModelHandle| tokenize(d, m, Map::new()));
    engine.register_fn("len", |t: &mut TokensHandle| t.0.len() as i64);
    engine.register_fn("to_string", |t: &mut TokensHandle| {
        format!("TokenizedDataset {} ({} rows, max_len {}, {} truncated)", t.0.name, t.0.len(), t.0.max_len, t.0.truncated)
    });

    let c = ctx.clone();
    let make_loader = move |t: &mut TokensHandle, opts: Map| -> R<LoaderHandle> {
        let o = Options::new("loader", opts)?;
        let options = LoaderOptions {
            batch_size: o.int("batch", 16, 1, 1 << 20)? as usize,
            shuffle: o.bool("shuffle", false)?,
            seed: o.int("seed", c.seed.get() as i64, 0, i64::MAX)? as u64,
            drop_last: o.bool("drop_last", false)?,
        };
        guard(|| Ok(LoaderHandle(DataLoader::new(t.0.clone(), options)?)))
    };
    let ml = make_loader.clone();
    engine.register_fn("loader", make_loader);
    engine.register_fn("loader", move |t: &mut TokensHandle| ml(t, Map::new()));
    engine.register_fn("len", |l: &mut LoaderHandle| l.0.len() as i64);
    engine.register_fn("to_string", |l: &mut LoaderHandle| {
        format!("Loader over {} ({} rows, {} batches of {})", l.0.data.name, l.0.data.len(), l.0.len(), l.0.options.batch_size)
    });
}
