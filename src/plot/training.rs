//! Charts of training runs: curves, comparisons, learning rates and layer norms.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LABEL_PX, WIDTH, char_width, fit_names, err, legend, line_mark, shorten, Chart, Figure, BLUE, GREEN, ORANGE, PALETTE, VERMILLION};
use crate::train::{LrFind, TrainRun};

/// A run with the name it goes by in a legend.
#[derive(Debug, Clone)]
pub struct NamedRun {
    /// The legend entry, e.g. `full` or `lr 1e-4`.
    pub name: String,
    /// The run.
    pub run: TrainRun,
}

/// How training curves are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveOptions {
    /// The validation metric beside the loss; `None` takes the task's
    /// headline metric (accuracy, or R² for regression).
    pub metric: Option<String>,
    /// Epochs on the x axis (fractions within an epoch) rather than optimizer steps.
    pub by_epoch: bool,
    /// Weight of the exponential smoothing of the training loss (0 draws it raw).
    pub smoothing: f64,
    /// The run has a validation set that has not been evaluated yet (a live
    /// chart before the first evaluation).
    pub awaiting_validation: bool,
}

impl Default for CurveOptions {
    fn default() -> Self {
        Self { metric: None, by_epoch: false, smoothing: 0.9, awaiting_validation: false }
    }
}

/// Training loss by step (raw and smoothed) with validation loss, beside the
/// task's headline validation metric; the epoch early stopping kept and an
/// interrupt are marked.
pub fn training_curves(run: &TrainRun) -> Chart {
    Chart::new(Figure::Curves(run.clone(), CurveOptions::default()), (WIDTH, 300))
}

/// Training curves drawn as `opts` says; a metric the run's task does not
/// have is an error naming the ones it has.
pub fn training_curves_with(run: &TrainRun, opts: &CurveOptions) -> Result<Chart> {
    if let Some(m) = &opts.metric {
        let task = run.epochs.iter().find_map(|e| e.val).map(|v| v.task);
        let valid: Vec<&str> = match task {
            Some(t) => t.metric_names().to_vec(),
            None => vec!["accuracy", "f1", "mse", "mae", "r2"],
        };
        if !valid.contains(&m.as_str()) {
            anyhow::bail!("this run has no validation metric '{m}'; it has: {}", valid.join(", "));
        }
    }
    if !(0.0..1.0).contains(&opts.smoothing) {
        anyhow::bail!("smoothing must be at least 0 and below 1 (0.9 smooths much, 0 not at all); got {}", opts.smoothing);
    }
    Ok(Chart::new(Figure::Curves(run.clone(), opts.clone()), (WIDTH, 300)))
}

/// Several runs overlaid, one colour each: validation loss (training loss
/// where a run had no validation set) and the headline metric, by epoch.
pub fn compare_runs(runs: &[NamedRun]) -> Chart {
    Chart::new(Figure::Compare(runs.to_vec()), (WIDTH, 320))
}

/// For several runs, bars of the final headline metric, the trainable
/// parameters and the training time: what each way of fine-tuning costs
/// for what it reaches.
pub fn compare_bars(runs: &[NamedRun]) -> Chart {
    Chart::new(Figure::CompareBars(runs.to_vec()), (WIDTH, 300))
}

/// The learning rate of every optimizer step: warmup, decay, and any
/// reductions on a plateau.
pub fn lr_schedule(run: &TrainRun) -> Chart {
    Chart::new(Figure::LrSchedule(run.clone()), (WIDTH, 280))
}

/// The learning-rate range test: smoothed loss against the rate (log
/// scale), with the suggested rate marked.
pub fn lr_find_curve(found: &LrFind) -> Chart {
    Chart::new(Figure::LrFind(found.clone()), (WIDTH, 300))
}

/// Per layer group, how far the weights moved from where the run started
/// (relative change) and the mean gradient norm, by epoch: which layers
/// actually learn. Needs a run fitted with `track_layers`.
pub fn layer_norms(run: &TrainRun) -> Chart {
    Chart::new(Figure::LayerNorms(run.clone()), (WIDTH, 340))
}

/// Debiased exponential moving average, as TensorBoard smooths noisy step
/// losses (the debiasing keeps the first points from leaning on the first value).
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let mut biased = 0.0;
    let mut out = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        biased = weight * biased + (1.0 - weight) * v;
        out.push(biased / (1.0 - weight.powi(i as i32 + 1)));
    }
    out
}

/// Every k-th point (and the last), so that at most about `max` remain.
fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let k = points.len().div_ceil(max.max(1)).max(1);
    let mut out: Vec<(f64, f64)> = points.iter().step_by(k).copied().collect();
    if let (Some(last), Some(kept)) = (points.last(), out.last()) {
        if last != kept {
            out.push(*last);
        }
    }
    out
}

/// The headline metric of a run's validation results (accuracy, or R² for regression).
fn headline(run: &TrainRun) -> &'static str {
    run.epochs.iter().find_map(|e| e.val).map_or("accuracy", |v| v.task.headline_metric())
}

fn metric_title(metric: &str) -> &'static str {
    match metric {
        "r2" => "validation R²",
        "f1" => "validation F1",
        "mse" => "validation MSE",
        "mae" => "validation MAE",
        "perplexity" => "validation perplexity",
        _ => "validation accuracy",
    }
}

/// A metric's axis range with a margin, kept within 0-1 except for R².
fn metric_range(values: impl Iterator<Item = f64>, metric: &str) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    // A fifth of the spread on each side leaves room for the best value's label.
    let pad = |least: f64| (0.2 * (hi - lo)).max(least);
    match metric {
        "r2" => (lo - pad(0.05), (hi + pad(0.05)).min(1.0).max(lo + 0.01)),
        // Errors have no upper bound.
        "mse" | "mae" => (0.0, (hi * 1.2).max(1e-6)),
        // Perplexity is at least 1 and has no upper bound.
        "perplexity" => ((lo - pad(0.1 * lo)).max(1.0), (hi + pad(0.1 * hi)).max(lo + 0.01)),
        _ => ((lo - pad(0.05)).max(0.0), (hi + pad(0.05)).min(1.0).max(lo + 0.01)),
    }
}

pub(super) fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, run: &TrainRun, opts: &CurveOptions) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (width, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(width * 58 / 100);
    let steps_per_epoch = if run.epochs.is_empty() { 1.0 } else { run.steps.len() as f64 / run.epochs.len() as f64 }.max(1e-9);
    let x_of = |step: f64| if opts.by_epoch { step / steps_per_epoch } else { step };
    let x_desc = if opts.by_epoch { "epoch" } else { "optimizer step" };
    let all_steps: Vec<(f64, f64)> = run.steps.iter().map(|s| (x_of(s.step as f64), s.loss)).collect();
    let smoothed: Vec<(f64, f64)> = all_steps.iter().map(|s| s.0).zip(smooth(&all_steps.iter().map(|s| s.1).collect::<Vec<_>>(), opts.smoothing)).collect();
    // A few hundred points per line look the same as thousands, and keep a
    // live redraw fast and its SVG small.
    let (steps, smoothed) = (thin(&all_steps, 800), thin(&smoothed, 800));
    // Every validation result, at the step after which it ran: mid-epoch
    // ones (eval_every) and each epoch's end.
    let mut evals: Vec<(f64, crate::train::EvalResult)> = run.evaluations.iter().map(|e| (x_of(e.step as f64), e.result)).collect();
    evals.extend(run.epochs.iter().filter_map(|e| e.val.map(|v| (x_of(e.epoch as f64 * steps_per_epoch), v))));
    evals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let val_loss: Vec<(f64, f64)> = evals.iter().map(|(x, v)| (*x, v.loss)).collect();
    let x_end = all_steps.last().map(|s| s.0).unwrap_or(1.0).max(val_loss.last().map_or(0.0, |v| v.0)).max(if opts.by_epoch { 0.1 } else { 1.0 });
    // Headroom above the highest loss keeps a band free for the legend.
    let max_loss = all_steps.iter().map(|s| s.1).chain(val_loss.iter().map(|v| v.1)).filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-3) * 1.35;
    // Steps are whole numbers: a tick between two steps gets no label, so
    // that a short run does not read "0 0 1 2 2 3".
    let x_label = |x: &f64| match opts.by_epoch {
        true => format!("{x:.1}").trim_end_matches(".0").to_string(),
        false if (x - x.round()).abs() < 1e-9 => format!("{x:.0}"),
        false => String::new(),
    };
    let x_ticks = if opts.by_epoch { 10 } else { (x_end.ceil() as usize + 1).clamp(2, 10) };
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_end, 0.0..max_loss)
        .map_err(err)?;
    chart.configure_mesh().x_desc(x_desc).y_desc("loss").x_labels(x_ticks).x_label_formatter(&x_label).light_line_style(WHITE.mix(0.0)).label_style(("sans-serif", LABEL_PX)).draw().map_err(err)?;
    if opts.smoothing > 0.0 {
        chart.draw_series(LineSeries::new(steps.clone(), BLUE.mix(0.25))).map_err(err)?;
        chart.draw_series(LineSeries::new(smoothed, BLUE.stroke_width(2))).map_err(err)?.label("train (smoothed)").legend(line_mark(BLUE));
    } else {
        chart.draw_series(LineSeries::new(steps.clone(), BLUE.stroke_width(1))).map_err(err)?.label("train").legend(line_mark(BLUE));
    }
    if !val_loss.is_empty() {
        chart.draw_series(LineSeries::new(val_loss.clone(), ORANGE.stroke_width(2)).point_size(4)).map_err(err)?.label("validation").legend(line_mark(ORANGE));
    }
    if let Some(best) = run.best_epoch.filter(|_| run.restored_best || run.stopped_early_at.is_some()) {
        let x = x_of(best as f64 * steps_per_epoch);
        let label = if run.restored_best { format!("kept epoch {best}") } else { format!("best epoch {best}") };
        chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, max_loss)], 6, 4, GREEN.stroke_width(2))).map_err(err)?.label(label).legend(line_mark(GREEN));
    }
    if run.interrupted {
        chart.draw_series(LineSeries::new(vec![(x_end, 0.0), (x_end, max_loss)], VERMILLION.stroke_width(2))).map_err(err)?.label("interrupted").legend(line_mark(VERMILLION));
    }
    // Losses fall, so the upper right is where the chart is empty.
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    let metric = opts.metric.as_deref().unwrap_or_else(|| headline(run));
    let points: Vec<(f64, f64)> = evals.iter().filter_map(|(x, v)| v.metric(metric).map(|m| (*x, m))).collect();
    let (lo, hi) = metric_range(points.iter().map(|p| p.1), metric);
    let title = metric_title(metric);
    let caption = match (points.is_empty(), opts.awaiting_validation) {
        (false, _) => title.to_string(),
        (true, true) => format!("{title} (waiting for the first evaluation)"),
        (true, false) => format!("{title} (no validation set)"),
    };
    let mut chart = ChartBuilder::on(&right)
        .caption(&caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_end * 1.04, lo..hi)
        .map_err(err)?;
    chart.configure_mesh().x_desc(x_desc).x_labels(x_ticks).x_label_formatter(&x_label).light_line_style(WHITE.mix(0.0)).label_style(("sans-serif", LABEL_PX)).draw().map_err(err)?;
    chart.draw_series(LineSeries::new(points.clone(), GREEN.stroke_width(2)).point_size(4)).map_err(err)?;
    // The best: early stopping's epoch when it ran, else the best value
    // (the lowest for an error, the highest otherwise).
    let lower_is_better = matches!(metric, "mse" | "mae" | "perplexity");
    let chosen = run.best_epoch.and_then(|b| {
        let x = x_of(b as f64 * steps_per_epoch);
        points.iter().copied().find(|p| (p.0 - x).abs() < 1e-6)
    });
    let best_value = points.iter().copied().reduce(|a, b| if (b.1 > a.1) != lower_is_better && b.1 != a.1 { b } else { a });
    if let Some(best) = chosen.or(best_value) {
        chart.draw_series(std::iter::once(Circle::new(best, 7, GREEN.stroke_width(2)))).map_err(err)?;
        let text = format!("best {:.3}", best.1);
        chart.draw_series(std::iter::once(EmptyElement::at(best) + Text::new(text.clone(), best_label_offset(&chart, best, &text, lower_is_better), ("sans-serif", LABEL_PX).into_font().color(&BLACK)))).map_err(err)?;
    }
    Ok(())
}

/// Where the best value's label goes, from its point: on the side the
/// curve leaves free (above a maximum, below a minimum) where there is room,
/// centred on the point and kept inside the plot.
fn best_label_offset<DB: DrawingBackend>(chart: &ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>, best: (f64, f64), text: &str, lower_is_better: bool) -> (i32, i32) {
    let (x, y) = chart.backend_coord(&best);
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let em = LABEL_PX / 1.24;
    let width = (text.chars().count() as f64 * char_width(LABEL_PX)) as i32;
    let dx = (-width / 2).min(xs.end - x - width - 2).max(xs.start - x + 2);
    let room = 12 + em.ceil() as i32 + 2;
    let (room_above, room_below) = (y - ys.start >= room, ys.end - y >= room);
    let above = if lower_is_better { room_above && !room_below } else { room_above || !room_below };
    (dx, if above { -(room - 2) } else { 12 })
}

/// The axes of a chart by whole epochs, with `y_desc` on the left.
fn epoch_mesh<'a, DB: DrawingBackend + 'a>(chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>, max_epoch: f64, y_desc: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels((max_epoch as usize).clamp(1, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", LABEL_PX))
        .draw()
        .map_err(err)
}

pub(super) fn draw_compare<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, runs: &[NamedRun]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (width, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(width / 2);
    let max_epoch = runs.iter().map(|r| r.run.epochs.len()).max().unwrap_or(1).max(1) as f64;
    // Validation loss where there is one, else the epoch's training loss.
    let loss_of = |r: &TrainRun| -> Vec<(f64, f64)> {
        let val: Vec<(f64, f64)> = r.epochs.iter().filter_map(|e| e.val.map(|v| (e.epoch as f64, v.loss))).collect();
        if val.is_empty() { r.epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect() } else { val }
    };
    let any_val = runs.iter().any(|r| r.run.epochs.iter().any(|e| e.val.is_some()));
    let max_loss = runs.iter().flat_map(|r| loss_of(&r.run)).map(|p| p.1).filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-3) * 1.4;
    let mut chart = ChartBuilder::on(&left)
        .caption(if any_val { "validation loss" } else { "training loss" }, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..max_epoch + 0.5, 0.0..max_loss)
        .map_err(err)?;
    epoch_mesh(&mut chart, max_epoch, "loss")?;
    for (i, r) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart.draw_series(LineSeries::new(loss_of(&r.run), color.stroke_width(2)).point_size(4)).map_err(err)?.label(shorten(&r.name, 28)).legend(line_mark(color));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    let metric = runs.iter().map(|r| headline(&r.run)).next().unwrap_or("accuracy");
    let series: Vec<Vec<(f64, f64)>> = runs.iter().map(|r| r.run.epochs.iter().filter_map(|e| e.val.and_then(|v| v.metric(metric)).map(|m| (e.epoch as f64, m))).collect()).collect();
    let (lo, hi) = metric_range(series.iter().flatten().map(|p| p.1), metric);
    let title = metric_title(metric);
    let caption = if series.iter().all(Vec::is_empty) { format!("{title} (no validation set)") } else { title.to_string() };
    let mut chart = ChartBuilder::on(&right)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..max_epoch + 0.5, lo..hi)
        .map_err(err)?;
    epoch_mesh(&mut chart, max_epoch, "")?;
    for (i, points) in series.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(4)).map_err(err)?;
    }
    Ok(())
}

pub(super) fn draw_compare_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, runs: &[NamedRun]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let metric = runs.iter().map(|r| headline(&r.run)).next().unwrap_or("accuracy");
    let final_metric = |r: &TrainRun| r.final_val().and_then(|v| v.metric(metric)).unwrap_or(0.0);
    let panels: [(String, String, Box<dyn Fn(&TrainRun) -> f64>); 3] = [
        (metric_title(metric).replace("validation ", "final "), metric.to_string(), Box::new(final_metric)),
        ("trainable parameters".into(), "millions".into(), Box::new(|r: &TrainRun| r.trainable_params as f64 / 1e6)),
        ("training time".into(), "seconds".into(), Box::new(|r: &TrainRun| r.train_seconds)),
    ];
    // Each run keeps its colour of the run comparison, and its full name is
    // in one key under the panels (names under narrow bars would be cut).
    let (width, height) = root.dim_in_pixel();
    let (plots, key) = root.split_vertically(height.saturating_sub(30));
    let areas = plots.split_evenly((1, 3));
    for ((caption, unit, value), area) in panels.iter().zip(areas.iter()) {
        let values: Vec<f64> = runs.iter().map(|r| value(&r.run)).collect();
        let top = values.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-6) * 1.2;
        let bottom = values.iter().copied().fold(0.0f64, f64::min) * 1.2;
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(8)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..(runs.len() as f64 - 0.5), bottom..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(0)
            .y_desc(unit.as_str())
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", LABEL_PX))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, v)], PALETTE[i % PALETTE.len()].filled())))
            .map_err(err)?;
        let text = |v: f64| if v.abs() >= 100.0 { format!("{v:.0}") } else if v.abs() >= 1.0 { format!("{v:.2}") } else { format!("{v:.3}") };
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| EmptyElement::at((i as f64, v.max(0.0))) + Text::new(text(v), (-12, -16), ("sans-serif", LABEL_PX).into_font().color(&BLACK))))
            .map_err(err)?;
    }
    let slot = (width.saturating_sub(60) / runs.len().max(1) as u32) as f64;
    let names = fit_names(&runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(), slot - 22.0);
    let font = ("sans-serif", LABEL_PX).into_font().color(&BLACK);
    for (i, name) in names.iter().enumerate() {
        let x = 60 + (i as f64 * slot) as i32;
        key.draw(&Rectangle::new([(x, 8), (x + 14, 20)], PALETTE[i % PALETTE.len()].filled())).map_err(err)?;
        key.draw(&Text::new(name.clone(), (x + 20, 6), font.clone())).map_err(err)?;
    }
    Ok(())
}

pub(super) fn draw_lr_schedule<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, run: &TrainRun) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let points = thin(&run.steps.iter().map(|s| (s.step as f64, s.lr)).collect::<Vec<_>>(), 1000);
    let max_step = points.last().map_or(1.0, |p| p.0).max(1.0);
    let top = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-12) * 1.15;
    let mut chart = ChartBuilder::on(root)
        .caption("learning rate by step", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max_step, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("optimizer step")
        .y_desc("learning rate")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if *y == 0.0 { "0".into() } else { format!("{y:.1e}") })
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", LABEL_PX))
        .draw()
        .map_err(err)?;
    chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2))).map_err(err)?;
    Ok(())
}

pub(super) fn draw_lr_find<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, found: &LrFind) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let points: Vec<(f64, f64)> = found.lrs.iter().copied().zip(found.losses.iter().copied()).filter(|p| p.1.is_finite()).collect();
    let (lo_lr, hi_lr) = (found.lrs.first().copied().unwrap_or(1e-7).max(1e-12), found.lrs.last().copied().unwrap_or(1.0).max(1e-6));
    let hi_lr = if hi_lr > lo_lr { hi_lr } else { lo_lr * 10.0 };
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(root)
        .caption("learning-rate range test", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((lo_lr..hi_lr).log_scale(), (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("learning rate (log scale)")
        .y_desc("smoothed loss")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", LABEL_PX))
        .draw()
        .map_err(err)?;
    chart.draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2))).map_err(err)?.label("loss").legend(line_mark(BLUE));
    if let Some(&(lr, loss)) = points.iter().find(|p| p.0 == found.suggestion) {
        chart
            .draw_series(std::iter::once(Circle::new((lr, loss), 7, VERMILLION.stroke_width(2))))
            .map_err(err)?
            .label(format!("suggested {lr:.1e}"))
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, VERMILLION.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

pub(super) fn draw_layer_norms<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, run: &TrainRun) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (width, _) = root.dim_in_pixel();
    // The legend gets a column of its own, so that it covers no line.
    let (plots, key) = root.split_horizontally(width.saturating_sub(170));
    let (plots_width, _) = plots.dim_in_pixel();
    let (left, right) = plots.split_horizontally(plots_width / 2);
    // Groups in the order the run recorded them: the head first, then down the model.
    let mut groups: Vec<&str> = Vec::new();
    for s in &run.layers {
        if !groups.contains(&s.group.as_str()) {
            groups.push(&s.group);
        }
    }
    let max_epoch = run.layers.iter().map(|s| s.epoch).max().unwrap_or(1).max(1) as f64;
    let none = if run.layers.is_empty() { " (fit with track_layers: true)" } else { "" };
    type Pick = fn(&crate::train::LayerStats) -> f64;
    let panels: [(String, &str, Pick); 2] = [
        (format!("weight change from the start{none}"), "change of the weights (% of their norm)", |s| 100.0 * s.change),
        (format!("mean gradient norm{none}"), "gradient norm", |s| s.grad_norm),
    ];
    for ((caption, unit, pick), area) in panels.iter().zip([left, right]) {
        let top = run.layers.iter().map(pick).filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..max_epoch + 0.5, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(*unit)
            .x_labels((max_epoch as usize).clamp(1, 10))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if *y == 0.0 { "0".into() } else if top < 0.01 { format!("{y:.1e}") } else { format!("{y:.2}") })
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", LABEL_PX))
            .draw()
            .map_err(err)?;
        for (i, g) in groups.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = run.layers.iter().filter(|s| s.group == *g).map(|s| (s.epoch as f64, pick(s))).collect();
            chart.draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3)).map_err(err)?;
        }
    }
    let font = ("sans-serif", LABEL_PX).into_font().color(&BLACK);
    for (i, g) in groups.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let y = 48 + 20 * i as i32;
        key.draw(&PathElement::new(vec![(6, y), (26, y)], color.stroke_width(3))).map_err(err)?;
        key.draw(&Text::new(shorten(g, 20), (32, y - 7), font.clone())).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{assert_svg_has, has_text};
    use crate::train::{EpochRecord, EvalResult, StepRecord};

    fn run(interrupted: bool) -> TrainRun {
        TrainRun {
            steps: (1..=40).map(|s| StepRecord { step: s, loss: 0.7 / (s as f64).sqrt(), lr: 1e-4 * (1.0 - s as f64 / 41.0), grad_norm: None }).collect(),
            epochs: (1..=2)
                .map(|e| EpochRecord {
                    epoch: e,
                    train_loss: 0.5,
                    val: Some(EvalResult { f1: Some(0.7), loss: 0.4 / e as f64, accuracy: Some(0.7 + 0.05 * e as f64), rows: 10, task: crate::task::Task::Classify, mse: None, mae: None, r2: None }),
                    elapsed: 1.0,
                })
                .collect(),
            interrupted,
            trainable_params: 1_000_000,
            train_seconds: 12.0,
            ..Default::default()
        }
    }

    #[test]
    fn a_language_model_run_charts_perplexity_with_the_lowest_as_best() {
        let mut r = run(false);
        for e in &mut r.epochs {
            e.val = Some(EvalResult { f1: None, loss: 3.0 - e.epoch as f64, accuracy: None, rows: 10, task: crate::task::Task::NextToken, mse: None, mae: None, r2: None });
        }
        // exp(1.0) = 2.718 after epoch 2, below exp(2.0) = 7.389 after epoch 1.
        let svg = training_curves(&r).svg().unwrap();
        assert_svg_has(&svg, &["validation perplexity", "best 2.718"]);
    }

    /// The top of the `best ...` label and the centre of its circle, from the SVG.
    fn best_label_and_point(svg: &str) -> (f64, f64) {
        let number = |tag: &str, attr: &str| -> f64 {
            let at = tag.find(&format!(" {attr}=\"")).unwrap() + attr.len() + 3;
            tag[at..].split('"').next().unwrap().parse().unwrap()
        };
        let text = svg.split("<text").find(|t| t.contains("best ")).unwrap();
        let circle = svg.split("<circle").find(|c| c.contains(" r=\"7\"")).unwrap();
        (number(text, "y"), number(circle, "cy"))
    }

    #[test]
    fn the_best_label_sits_on_the_side_its_curve_leaves_free() {
        // Accuracy rises to its best at the last epoch: the label goes above
        // the point, clear of the circle, where the line cannot run.
        let r = run(false);
        let (text_top, point) = best_label_and_point(&training_curves(&r).svg().unwrap());
        let em = LABEL_PX / 1.24;
        assert!(text_top + em < point - 7.0, "the label ({text_top}) is not above its point ({point})");
        // Perplexity falls to its best: the label goes below.
        let mut r = run(false);
        for e in &mut r.epochs {
            e.val = Some(EvalResult { f1: None, loss: 3.0 - e.epoch as f64, accuracy: None, rows: 10, task: crate::task::Task::NextToken, mse: None, mae: None, r2: None });
        }
        let (text_top, point) = best_label_and_point(&training_curves(&r).svg().unwrap());
        assert!(text_top > point + 7.0, "the label ({text_top}) is not below its point ({point})");
    }

    #[test]
    fn training_curves_render_as_svg_and_png() {
        let mut r = run(true);
        r.best_epoch = Some(1);
        r.restored_best = true;
        let chart = training_curves(&r);
        let svg = chart.svg().unwrap();
        assert_svg_has(&svg, &["validation accuracy", "interrupted", "best 0.750", "kept epoch 1", "train (smoothed)", "optimizer step"]);
        let png = chart.png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(png.len() > 5_000, "the PNG is suspiciously small");
    }

    #[test]
    fn a_short_run_labels_each_whole_step_once_and_waits_for_its_first_evaluation() {
        let mut r = run(false);
        r.steps.truncate(5);
        r.epochs.clear();
        let opts = CurveOptions { awaiting_validation: true, ..Default::default() };
        let svg = training_curves_with(&r, &opts).unwrap().svg().unwrap();
        // Every whole-number text: the x ticks of the two panels.
        let texts: Vec<String> = svg.split("</text>").filter_map(|t| t.rsplit('>').next()).map(|t| t.trim().to_string()).filter(|t| t.parse::<u32>().is_ok()).collect();
        for step in 0..=5 {
            let n = texts.iter().filter(|t| **t == step.to_string()).count();
            assert_eq!(n, 2, "step {step} labelled {n} times (once per panel): {texts:?}");
        }
        assert_svg_has(&svg, &["waiting for the first evaluation"]);
        assert!(!svg.contains("no validation set"));
    }

    #[test]
    fn curves_follow_the_chosen_metric_axis_and_smoothing() {
        let opts = CurveOptions { metric: Some("f1".into()), by_epoch: true, smoothing: 0.0, ..Default::default() };
        let svg = training_curves_with(&run(false), &opts).unwrap().svg().unwrap();
        assert_svg_has(&svg, &["=validation F1", "=epoch", "=train", "=best 0.700"]);
        assert!(!svg.contains("optimizer step") && !svg.contains("smoothed"));
        let err = training_curves_with(&run(false), &CurveOptions { metric: Some("r2".into()), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("no validation metric 'r2'; it has: accuracy, f1"), "{err}");
        assert!(training_curves_with(&run(false), &CurveOptions { smoothing: 1.0, ..Default::default() }).is_err());
    }

    #[test]
    fn an_empty_run_still_draws() {
        let svg = training_curves(&TrainRun::default()).svg().unwrap();
        assert!(svg.contains("loss") && svg.contains("no validation set"));
        assert!(layer_norms(&TrainRun::default()).svg().unwrap().contains("track_layers"));
        assert!(compare_runs(&[]).svg().is_ok() && compare_bars(&[]).png().is_ok());
    }

    #[test]
    fn a_comparison_has_one_legend_entry_and_bar_per_run() {
        let runs = vec![NamedRun { name: "full".into(), run: run(false) }, NamedRun { name: "head only".into(), run: run(false) }];
        let svg = compare_runs(&runs).svg().unwrap();
        assert!(has_text(&svg, "full") && has_text(&svg, "head only") && svg.contains("validation loss"));
        let bars = compare_bars(&runs).svg().unwrap();
        assert!(bars.contains("trainable parameters") && bars.contains("training time") && bars.contains("final accuracy"));
        assert!(has_text(&bars, "1.00") && has_text(&bars, "12.00"), "each bar is labelled with its value");
    }

    #[test]
    fn the_schedule_follows_the_steps() {
        let svg = lr_schedule(&run(false)).svg().unwrap();
        assert!(svg.contains("learning rate by step") && svg.contains("1.0e-4"), "{}", svg.len());
    }

    #[test]
    fn thinning_keeps_the_ends_and_at_most_about_max_points() {
        let points: Vec<(f64, f64)> = (0..10_001).map(|i| (i as f64, 0.0)).collect();
        let thinned = thin(&points, 800);
        assert!(thinned.len() <= 802 && thinned.len() >= 700, "{}", thinned.len());
        assert_eq!((thinned[0].0, thinned.last().unwrap().0), (0.0, 10_000.0));
        assert_eq!(thin(&points[..5], 800).len(), 5);
    }

    #[test]
    fn smoothing_follows_an_exponential_average() {
        let s = smooth(&[1.0, 1.0, 1.0], 0.9);
        assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-12), "a constant stays constant: {s:?}");
        let s = smooth(&[1.0, 0.0], 0.5);
        assert!((s[1] - 1.0 / 3.0).abs() < 1e-12);
    }
}
