//! Charts as script values: each `plot...` function draws a chart, shows it
//! (inline in a notebook, a PNG under out/plots/ from `tunebook run`) and
//! returns it, to retitle, resize or save.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::handles::{DatasetHandle, ImageDatasetHandle, LoaderHandle, LrFindHandle, RunHandle, TokensHandle};
use crate::data::LoaderSource;
use crate::plot::{self, Chart, ImageTile, NamedRun};
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

/// A chart in a script variable.
#[derive(Clone)]
pub(crate) struct ChartHandle {
    /// The chart.
    pub chart: Chart,
    /// The evaluation (cell) whose plot function showed it, if one did.
    shown_in: Option<u64>,
}

impl ChartHandle {
    /// Whether the cell now running showed this chart already, so that a
    /// cell ending in `plot(run)` shows it once, while a later cell that
    /// ends in the variable shows it again.
    pub(crate) fn shown_by_this_cell(&self, ctx: &Context) -> bool {
        self.shown_in == Some(ctx.evals.get())
    }
}

/// Applies `title`, `width` and `height` from `o` to `chart`.
fn apply_options(o: &Options, chart: Chart) -> R<Chart> {
    let (lo, hi) = (plot::SIDE_LIMITS.0 as i64, plot::SIDE_LIMITS.1 as i64);
    let (w, h) = chart.size();
    let width = o.int("width", w as i64, lo, hi)? as u32;
    let height = o.int("height", h as i64, lo, hi)? as u32;
    let mut chart = guard(|| chart.with_size(width, height))?;
    if o.get("title").is_some() {
        chart = chart.with_title(&o.string("title", "")?);
    }
    Ok(chart)
}

/// Applies the options, shows the chart and returns it.
pub(super) fn show(ctx: &Context, func: &'static str, chart: Chart, opts: Map) -> R<ChartHandle> {
    let chart = apply_options(&Options::new(func, opts)?, chart)?;
    shown(ctx, chart)
}

/// Shows a chart and returns it as a script value.
fn shown(ctx: &Context, chart: Chart) -> R<ChartHandle> {
    ctx.host.show_chart(&chart);
    Ok(ChartHandle { chart, shown_in: Some(ctx.evals.get()) })
}

/// Runs with their legend names, from an array of runs (named by `names`,
/// or run 1, run 2, ...) or a map of name to run.
fn named_runs(func: &str, runs: Dynamic, names: Option<&Dynamic>) -> R<Vec<NamedRun>> {
    let not_run = |what: String| script_error(format!("{func}: {what}; give an array of runs (what fit returns) or a map of name to run, like #{{ full: run1, head: run2 }}"));
    if let Some(map) = runs.clone().try_cast::<Map>() {
        return map
            .into_iter()
            .map(|(name, v)| match v.try_cast::<RunHandle>() {
                Some(r) => Ok(NamedRun { name: name.to_string(), run: (*r.0).clone() }),
                None => Err(not_run(format!("'{name}' is not a run"))),
            })
            .collect();
    }
    let array = runs.try_cast::<Array>().ok_or_else(|| not_run("that is neither".into()))?;
    let names: Vec<String> = match names {
        None => (1..=array.len()).map(|i| format!("run {i}")).collect(),
        Some(v) => {
            let list = v.clone().try_cast::<Array>().ok_or_else(|| script_error(format!("{func}: 'names' is an array of strings, one per run")))?;
            let list: Vec<String> = list.into_iter().map(|n| n.to_string()).collect();
            if list.len() != array.len() {
                return Err(script_error(format!("{func}: {} names for {} runs", list.len(), array.len())));
            }
            list
        }
    };
    array
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (v, name))| match v.try_cast::<RunHandle>() {
            Some(r) => Ok(NamedRun { name, run: (*r.0).clone() }),
            None => Err(not_run(format!("item {} is not a run", i + 1))),
        })
        .collect()
}

/// Class names and one field of an evaluation map (what `evaluate` returns).
fn eval_parts(func: &str, result: &Map, field: &str) -> R<(Vec<String>, Dynamic)> {
    let missing = || script_error(format!("{func}: give it what evaluate(model, loader) returned for a classifier (a map with 'per_class' and '{field}')"));
    let per_class = result.get("per_class").and_then(|v| v.clone().try_cast::<Array>()).ok_or_else(missing)?;
    let labels = per_class.iter().map(|c| c.clone().try_cast::<Map>().and_then(|m| m.get("label").map(|l| l.to_string())).ok_or_else(missing)).collect::<R<Vec<String>>>()?;
    Ok((labels, result.get(field).cloned().ok_or_else(missing)?))
}

fn number(v: &Dynamic) -> Option<f64> {
    v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64))
}

fn confusion(result: Map) -> R<Chart> {
    let (labels, matrix) = eval_parts("plot_confusion", &result, "confusion")?;
    let bad = || script_error("plot_confusion: 'confusion' must be rows of counts, one row per class");
    let rows = matrix.try_cast::<Array>().ok_or_else(bad)?;
    let counts = rows
        .into_iter()
        .map(|r| r.try_cast::<Array>().ok_or_else(bad).and_then(|r| r.iter().map(|c| c.as_int().map_err(|_| bad())).collect::<R<Vec<i64>>>()))
        .collect::<R<Vec<Vec<i64>>>>()?;
    guard(|| plot::confusion_matrix(&labels, &counts))
}

fn scores(result: Map) -> R<Chart> {
    let (labels, per_class) = eval_parts("plot_scores", &result, "per_class")?;
    let bad = || script_error("plot_scores: each of 'per_class' needs precision, recall, f1 and support");
    let scores = per_class
        .try_cast::<Array>()
        .ok_or_else(bad)?
        .into_iter()
        .map(|c| {
            let m = c.try_cast::<Map>().ok_or_else(bad)?;
            let get = |k: &str| m.get(k).and_then(number).ok_or_else(bad);
            Ok(crate::train::metrics::ClassScores { precision: get("precision")?, recall: get("recall")?, f1: get("f1")?, support: get("support")? as i64 })
        })
        .collect::<R<Vec<_>>>()?;
    guard(|| plot::class_scores(&labels, &scores))
}

/// The first `n` images of a set as tiles, augmented with `seed` if given.
fn tiles(set: &crate::data::image::ImageSet, n: usize, seed: Option<u64>) -> Vec<ImageTile> {
    let data = &set.data;
    (0..n.min(data.len()))
        .map(|i| ImageTile { pixels: set.preview(i, seed), shape: set.output_shape(), caption: data.targets.describe_row(i, &data.label_names) })
        .collect()
}

fn images_of_loader(l: &LoaderHandle, o: &Options) -> R<Chart> {
    let LoaderSource::Images(set) = &l.0.source else {
        return Err(script_error("plot_images: this loader holds texts; give an image dataset or an image loader"));
    };
    let n = o.int("n", 8, 1, 64)? as usize;
    let mut rows = vec![("original".to_string(), tiles(set, n, None))];
    if set.transform.augment != crate::data::image::Augment::default() {
        rows.push(("augmented".to_string(), tiles(set, n, Some(l.0.augment_seed(1)))));
    }
    guard(|| plot::image_grid(rows))
}

/// Registers the plot functions and the Chart type's methods.
pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<ChartHandle>("Chart");
    macro_rules! plot_fn {
        ($name:literal, $ty:ty, $make:expr) => {{
            let c = ctx.clone();
            engine.register_fn($name, move |x: $ty| -> R<ChartHandle> { show(&c, $name, $make(x)?, Map::new()) });
            let c = ctx.clone();
            engine.register_fn($name, move |x: $ty, opts: Map| -> R<ChartHandle> { show(&c, $name, $make(x)?, opts) });
        }};
    }
    let c = ctx.clone();
    engine.register_fn("plot", move |r: RunHandle| -> R<ChartHandle> { show(&c, "plot", plot::training_curves(&r.0), Map::new()) });
    let c = ctx.clone();
    engine.register_fn("plot", move |r: RunHandle, opts: Map| -> R<ChartHandle> {
        let o = Options::new("plot", opts.clone())?;
        let metric = o.get("metric").map(|_| o.choice("metric", "accuracy", &["accuracy", "f1", "mse", "mae", "r2"])).transpose()?;
        let by_epoch = o.choice("by", "step", &["step", "epoch"])? == "epoch";
        let smoothing = o.float("smooth", 0.9, 0.0, 0.99)?;
        let chart = guard(|| plot::training_curves_with(&r.0, &plot::CurveOptions { metric, by_epoch, smoothing, ..Default::default() }))?;
        let mut rest = opts;
        for key in ["metric", "by", "smooth"] {
            rest.remove(key);
        }
        show(&c, "plot", chart, rest)
    });
    plot_fn!("plot", LrFindHandle, |f: LrFindHandle| R::Ok(plot::lr_find_curve(&f.0)));
    plot_fn!("plot_lr", RunHandle, |r: RunHandle| R::Ok(plot::lr_schedule(&r.0)));
    plot_fn!("plot_layers", RunHandle, |r: RunHandle| R::Ok(plot::layer_norms(&r.0)));
    plot_fn!("plot_confusion", Map, confusion);
    plot_fn!("plot_scores", Map, scores);
    plot_fn!("plot_balance", DatasetHandle, |d: DatasetHandle| {
        if matches!(d.0.targets, crate::data::Targets::Values(_)) {
            return Err(script_error("plot_balance: a regression dataset has numbers, not classes, to count"));
        }
        R::Ok(plot::class_balance(&d.0.name, &d.0.label_names, &d.0.targets.label_counts(d.0.label_names.len())))
    });
    plot_fn!("plot_balance", ImageDatasetHandle, |d: ImageDatasetHandle| {
        let (labels, counts): (Vec<String>, Vec<usize>) = d.0.class_counts().into_iter().unzip();
        R::Ok(plot::class_balance(&d.0.name, &labels, &counts))
    });
    plot_fn!("plot_lengths", TokensHandle, |t: TokensHandle| R::Ok(plot::token_lengths(&t.0.name, &guard(|| t.0.full_lengths())?, t.0.max_len)));
    // Comparisons take an array or a map of runs; `names` names an array's runs.
    for (name, make) in [("plot", plot::compare_runs as fn(&[NamedRun]) -> Chart), ("plot_costs", plot::compare_bars)] {
        let c = ctx.clone();
        engine.register_fn(name, move |runs: Array| -> R<ChartHandle> { show(&c, name, make(&named_runs(name, Dynamic::from_array(runs), None)?), Map::new()) });
        let c = ctx.clone();
        engine.register_fn(name, move |runs: Array, opts: Map| -> R<ChartHandle> {
            let names = opts.get("names").cloned();
            let mut rest = opts;
            rest.remove("names");
            show(&c, name, make(&named_runs(name, Dynamic::from_array(runs), names.as_ref())?), rest)
        });
        let c = ctx.clone();
        engine.register_fn(name, move |runs: Map| -> R<ChartHandle> { show(&c, name, make(&named_runs(name, Dynamic::from_map(runs), None)?), Map::new()) });
        let c = ctx.clone();
        engine.register_fn(name, move |runs: Map, opts: Map| -> R<ChartHandle> { show(&c, name, make(&named_runs(name, Dynamic::from_map(runs), None)?), opts) });
    }
    let c = ctx.clone();
    engine.register_fn("plot_images", move |d: ImageDatasetHandle| -> R<ChartHandle> { plot_images_of_dataset(&c, &d, Map::new()) });
    let c = ctx.clone();
    engine.register_fn("plot_cam", move |m: super::handles::ImageModelHandle, path: &str| -> R<ChartHandle> { plot_cam(&c, &m, path, Map::new()) });
    let c = ctx.clone();
    engine.register_fn("plot_cam", move |m: super::handles::ImageModelHandle, path: &str, opts: Map| -> R<ChartHandle> { plot_cam(&c, &m, path, opts) });
    let c = ctx.clone();
    engine.register_fn("plot_images", move |d: ImageDatasetHandle, opts: Map| -> R<ChartHandle> { plot_images_of_dataset(&c, &d, opts) });
    let c = ctx.clone();
    engine.register_fn("plot_images", move |l: LoaderHandle| -> R<ChartHandle> { plot_images_of_loader(&c, &l, Map::new()) });
    let c = ctx.clone();
    engine.register_fn("plot_images", move |l: LoaderHandle, opts: Map| -> R<ChartHandle> { plot_images_of_loader(&c, &l, opts) });

    let saver = ctx.clone();
    engine.register_fn("save", move |c: &mut ChartHandle, path: &str| -> R<String> { save(&saver, c, path, Map::new()) });
    let saver = ctx.clone();
    engine.register_fn("save", move |c: &mut ChartHandle, path: &str, opts: Map| -> R<String> { save(&saver, c, path, opts) });
    engine.register_fn("title", |c: &mut ChartHandle, title: &str| ChartHandle { chart: c.chart.clone().with_title(title), shown_in: None });
    engine.register_fn("resize", |c: &mut ChartHandle, width: i64, height: i64| -> R<ChartHandle> {
        let (w, h) = (u32::try_from(width).unwrap_or(0), u32::try_from(height).unwrap_or(0));
        Ok(ChartHandle { chart: guard(|| c.chart.clone().with_size(w, h))?, shown_in: None })
    });
    engine.register_get("kind", |c: &mut ChartHandle| c.chart.kind().to_string());
    engine.register_get("width", |c: &mut ChartHandle| c.chart.size().0 as i64);
    engine.register_get("height", |c: &mut ChartHandle| c.chart.size().1 as i64);
    engine.register_fn("to_string", |c: &mut ChartHandle| c.chart.to_string());
    engine.register_fn("to_debug", |c: &mut ChartHandle| c.chart.to_string());
}

/// `plot_cam(model, image_file, #{ class })`: Grad-CAM over the model's last
/// convolution maps, for the predicted class or the one named.
fn plot_cam(ctx: &Context, m: &super::handles::ImageModelHandle, path: &str, opts: Map) -> R<ChartHandle> {
    let o = Options::new("plot_cam", opts)?;
    let model = m.0.borrow();
    let class = match o.get("class") {
        None => None,
        Some(v) if v.is_int() => Some(usize::try_from(v.as_int().unwrap()).map_err(|_| script_error("plot_cam: 'class' is an index from 0 or a label"))?),
        Some(v) => {
            let name = v.clone().into_string().map_err(|_| script_error("plot_cam: 'class' is an index from 0 or a label"))?;
            Some(model.labels.iter().position(|l| *l == name).ok_or_else(|| {
                let close = crate::suggest::closest(&name, &model.labels, 5).join(", ");
                script_error(format!("plot_cam: '{name}' is not one of the model's labels; closest: {close}"))
            })?)
        }
    };
    let (image, heat, caption) = guard(|| {
        let (shown, input) = crate::inference::prepare_image(&model, std::path::Path::new(path))?;
        let (heat, class, p) = crate::inference::grad_cam(&model, &input, class)?;
        Ok((shown, heat, format!("{} {:.2}", model.labels[class], p)))
    })?;
    let s = image.size();
    let pixels: Vec<u8> = Vec::<f32>::try_from((image * 255.0).round().flatten(0, -1)).unwrap_or_default().into_iter().map(|v| v as u8).collect();
    let tile = ImageTile { pixels, shape: [s[0] as usize, s[1] as usize, s[2] as usize], caption: String::new() };
    let heat: Vec<f32> = Vec::try_from(heat.flatten(0, -1)).unwrap_or_default();
    let chart = apply_options(&o, guard(|| plot::heat_map(tile, &heat, &caption))?)?;
    shown(ctx, chart)
}

fn plot_images_of_dataset(ctx: &Context, d: &ImageDatasetHandle, opts: Map) -> R<ChartHandle> {
    let o = Options::new("plot_images", opts)?;
    let set = crate::data::image::ImageSet { data: d.0.clone(), transform: crate::data::image::ImageTransform::new(None, Default::default()) };
    let n = o.int("n", 8, 1, 64)? as usize;
    let chart = apply_options(&o, guard(|| plot::image_grid(vec![("original".to_string(), tiles(&set, n, None))]))?)?;
    shown(ctx, chart)
}

fn plot_images_of_loader(ctx: &Context, l: &LoaderHandle, opts: Map) -> R<ChartHandle> {
    let o = Options::new("plot_images", opts)?;
    let chart = apply_options(&o, images_of_loader(l, &o)?)?;
    shown(ctx, chart)
}

/// Writes the chart (resized or retitled by `opts` first); returns the path.
fn save(ctx: &Context, c: &ChartHandle, path: &str, opts: Map) -> R<String> {
    let chart = apply_options(&Options::new("save (chart)", opts)?, c.chart.clone())?;
    guard(|| chart.save(std::path::Path::new(path)))?;
    if c.shown_by_this_cell(ctx) {
        ctx.host.chart_saved();
    }
    Ok(path.to_string())
}

/// Shows a chart value (for `display(chart)`).
pub(super) fn display(ctx: &Context, value: &Dynamic) -> bool {
    match value.clone().try_cast::<ChartHandle>() {
        Some(c) => {
            ctx.host.show_chart(&c.chart);
            true
        }
        None => false,
    }
}
