//! Script arguments that several API areas read the same way: split and
//! k-fold options, loader options, selector lists, and a split's parts as
//! a map.

use rhai::{Array, Dynamic, EvalAltResult, Map};

use crate::data::split::{Share, SplitSpec};
use crate::data::LoaderOptions;
use crate::script::options::{script_error, Options};
use crate::script::Context;

type R<T> = Result<T, Box<EvalAltResult>>;

/// A part's size: a share below 1 (`0.2`) or a number of rows (`500`).
fn share(o: &Options, key: &str) -> R<Option<Share>> {
    match o.get(key) {
        None => Ok(None),
        Some(v) if v.is_int() => {
            let n = v.as_int().unwrap();
            if n < 1 {
                return Err(script_error(format!("split: option '{key}' must be a share between 0 and 1 or a number of rows, got {n}")));
            }
            Ok(Some(Share::Rows(n as usize)))
        }
        Some(v) if v.is_float() => {
            let f = v.as_float().unwrap();
            if !(f > 0.0 && f < 1.0) {
                return Err(script_error(format!("split: option '{key}' must be a share between 0 and 1 or a number of rows, got {f}")));
            }
            Ok(Some(Share::Fraction(f)))
        }
        Some(v) => Err(script_error(format!("split: option '{key}' must be a number, got {} ({v}); give a share between 0 and 1 or a number of rows", v.type_name()))),
    }
}

/// `split`'s options.
pub(super) fn split_spec(ctx: &Context, opts: Map) -> R<SplitSpec> {
    let o = Options::new("split", opts)?;
    Ok(SplitSpec {
        val: share(&o, "val")?.unwrap_or(Share::Fraction(0.2)),
        test: share(&o, "test")?,
        seed: o.int("seed", ctx.seed.get() as i64, 0, i64::MAX)? as u64,
        stratify: o.bool("stratify", false)?,
    })
}

/// The parts of a split (or a fold, without test) as a map of datasets.
pub(super) fn parts_map<T>((train, val, test): (T, T, Option<T>), wrap: impl Fn(T) -> Dynamic) -> Map {
    let mut m = Map::new();
    m.insert("train".into(), wrap(train));
    m.insert("val".into(), wrap(val));
    if let Some(test) = test {
        m.insert("test".into(), wrap(test));
    }
    m
}

/// `kfold`'s options: k, seed and whether to stratify.
pub(super) fn kfold_options(ctx: &Context, opts: Map) -> R<(usize, u64, bool)> {
    let o = Options::new("kfold", opts)?;
    Ok((o.int("k", 5, 2, 1_000_000)? as usize, o.int("seed", ctx.seed.get() as i64, 0, i64::MAX)? as u64, o.bool("stratify", false)?))
}

/// `loader`'s batching options.
pub(super) fn loader_options(ctx: &Context, o: &Options) -> R<LoaderOptions> {
    Ok(LoaderOptions {
        batch_size: o.int("batch", 16, 1, 1 << 20)? as usize,
        shuffle: o.bool("shuffle", false)?,
        seed: o.int("seed", ctx.seed.get() as i64, 0, i64::MAX)? as u64,
        drop_last: o.bool("drop_last", false)?,
        bucket: o.bool("bucket", false)?,
        packing: o.bool("packing", false)?,
    })
}

/// Selectors given as an array of strings.
pub(super) fn selector_list(func: &str, selectors: Array) -> R<Vec<String>> {
    selectors
        .into_iter()
        .map(|x| x.into_string().map_err(|t| script_error(format!("{func}: selectors must be strings, found a {t}"))))
        .collect()
}
