//! Datasets streamed from Parquet or Arrow files (`load_dataset(path, #{ stream: true })`):
//! their rows, parts and loaders; the texts are read batch by batch.

use std::rc::Rc;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::args::{loader_options, parts_map, split_spec};
use super::handles::{LoaderHandle, ModelHandle};
use crate::data::columnar;
use crate::data::StreamedTokens;
use crate::data::stream::StreamedText;
use crate::data::{CsvColumns, DataLoader, LoaderSource};
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

/// A dataset whose texts stay in Parquet files.
#[derive(Clone)]
pub(crate) struct StreamedHandle(pub Rc<StreamedText>);

/// A streamed dataset with the model's tokenizer, ready for `loader`.
#[derive(Clone)]
pub(crate) struct StreamedTokensHandle(pub Arc<StreamedTokens>);

/// `load_dataset(path, #{ stream: true })`: one streamed dataset, or a map
/// of them by split; notes said on the way.
pub(super) fn load(ctx: &Context, name: &str, cols: &CsvColumns, split: Option<&str>) -> R<Dynamic> {
    let mut parts = if columnar::is_saved_dataset(name) {
        guard(|| columnar::arrow_parts(name))?.into_iter().map(|(split, source, files, names)| (split, source, files, Some(names))).collect()
    } else {
        guard(|| columnar::parquet_parts(name))?.into_iter().map(|(split, source, files)| (split, source, files, None)).collect::<Vec<_>>()
    };
    if let Some(split) = split {
        let names: Vec<String> = parts.iter().filter_map(|(s, _, _, _)| s.clone()).collect();
        if names.is_empty() {
            return Err(script_error(format!("load_dataset: split: \"{split}\" picks a split, and {name} has none (its files are one table)")));
        }
        parts.retain(|(s, _, _, _)| s.as_deref() == Some(split));
        if parts.is_empty() {
            return Err(script_error(format!("load_dataset: {name} has no split '{split}'; its splits: {}", names.join(", "))));
        }
    }
    let open = |source: &str, files: &[std::path::PathBuf], class_names: &Option<std::collections::HashMap<String, Vec<String>>>| -> R<Dynamic> {
        let data = guard(|| StreamedText::open(source, files, class_names.clone(), cols))?;
        for note in &data.notes {
            ctx.host.eprint(&format!("note: {note}"));
        }
        Ok(Dynamic::from(StreamedHandle(Rc::new(data))))
    };
    match parts.as_slice() {
        [(None, source, files, names)] => open(source, files, names),
        [(Some(_), source, files, names)] if split.is_some() => open(source, files, names),
        _ => {
            let mut map = Map::new();
            for (split, source, files, names) in &parts {
                map.insert(split.clone().unwrap_or_default().into(), open(source, files, names)?);
            }
            Ok(Dynamic::from(map))
        }
    }
}

fn describe(d: &StreamedText) -> String {
    let kind = d.file_kind();
    let files = if d.file_count() == 1 { format!("1 {kind} file") } else { format!("{} {kind} files", d.file_count()) };
    let labels = if !d.targets.is_labelled() {
        "unlabelled, for predict".to_string()
    } else if d.task() == crate::task::Task::Regression {
        format!("regression on {}", d.label_names.join(", "))
    } else {
        d.class_counts().iter().map(|(l, n)| format!("{l}: {n}")).collect::<Vec<_>>().join(", ")
    };
    format!("StreamedDataset {} ({} rows read as needed from {files}; {labels})", d.name, crate::numbers::group_digits(d.len() as i64))
}

/// The streamed dataset's functions.
pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<StreamedHandle>("StreamedDataset");
    engine.register_type_with_name::<StreamedTokensHandle>("StreamedTokens");
    engine.register_fn("len", |d: &mut StreamedHandle| d.0.len() as i64);
    engine.register_fn("to_string", |d: &mut StreamedHandle| describe(&d.0));
    engine.register_fn("to_debug", |d: &mut StreamedHandle| describe(&d.0));
    engine.register_fn("labels", |d: &mut StreamedHandle| -> Map { d.0.class_counts().into_iter().map(|(l, n)| (l.into(), Dynamic::from(n as i64))).collect() });
    engine.register_fn("take", |d: &mut StreamedHandle, n: i64| StreamedHandle(Rc::new(d.0.take(n.max(0) as usize))));
    let c = ctx.clone();
    engine.register_fn("split", move |d: &mut StreamedHandle, opts: Map| -> R<Map> {
        let spec = split_spec(&c, opts)?;
        let parts = guard(|| d.0.split(&spec))?;
        Ok(parts_map(parts, |d| Dynamic::from(StreamedHandle(Rc::new(d)))))
    });
    engine.register_fn("head", |d: &mut StreamedHandle, n: i64| -> R<Array> {
        let positions: Vec<usize> = (0..(n.max(0) as usize).min(d.0.len())).collect();
        let (texts, pairs) = guard(|| d.0.texts(&positions))?;
        Ok(texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let mut m = Map::new();
                m.insert("text".into(), text.into());
                if let Some(pairs) = &pairs {
                    m.insert("pair".into(), pairs[i].clone().into());
                }
                m.insert("label".into(), d.0.targets.describe_row(i, &d.0.label_names).into());
                Dynamic::from(m)
            })
            .collect())
    });
    let tokenize = |d: &mut StreamedHandle, m: ModelHandle, opts: Map| -> R<StreamedTokensHandle> {
        let o = Options::new("tokenize", opts)?;
        let max_len = o.int("max_len", 128, 2, 100_000)? as usize;
        let model = m.0.borrow();
        if max_len as i64 > model.config.max_position_embeddings {
            return Err(script_error(format!("tokenize: max_len {max_len} is longer than the model's {} positions", model.config.max_position_embeddings)));
        }
        guard(|| Ok(StreamedTokensHandle(Arc::new(StreamedTokens::new(&d.0, &model.tokenizer, max_len, &model.labels)?))))
    };
    engine.register_fn("tokenize", tokenize);
    engine.register_fn("tokenize", move |d: &mut StreamedHandle, m: ModelHandle| tokenize(d, m, Map::new()));
    engine.register_fn("len", |t: &mut StreamedTokensHandle| t.0.data.len() as i64);
    engine.register_fn("to_string", |t: &mut StreamedTokensHandle| format!("StreamedTokens {} ({} rows, max_len {}, tokenized batch by batch)", t.0.data.name, t.0.data.len(), t.0.max_len));
    let c = ctx.clone();
    let make_loader = move |t: &mut StreamedTokensHandle, opts: Map| -> R<LoaderHandle> {
        let o = Options::new("loader", opts)?;
        if let Some(key) = ["augment", "normalize"].into_iter().find(|k| o.get(k).is_some()) {
            return Err(script_error(format!("loader: option '{key}' is not available for a streamed dataset, which is read and tokenized a batch at a time; load it without stream: true to use it")));
        }
        let options = loader_options(&c, &o)?;
        guard(|| Ok(LoaderHandle(DataLoader::over(LoaderSource::Streamed(t.0.clone()), options)?)))
    };
    let ml = make_loader.clone();
    engine.register_fn("loader", make_loader);
    engine.register_fn("loader", move |t: &mut StreamedTokensHandle| ml(t, Map::new()));
}
