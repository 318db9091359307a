//! Charts drawn with plotters, as SVG (notebooks) and PNG (files), with an
//! embedded font so that no system fonts are needed.

use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::model::ModelSummary;
use crate::train::{LrFind, TrainRun};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 340);

/// One chart in both formats.
#[derive(Debug, Clone)]
pub struct Chart {
    /// SVG text.
    pub svg: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| ()).expect("the embedded font is a valid TTF");
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Renders a chart drawn by `draw` to SVG and PNG.
fn render(draw: impl Fn(DrawingArea<SVGBackend, Shift>) -> Result<()> + Copy, draw_png: impl Fn(DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<Chart> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(root)?;
    }
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw_png(root)?;
    }
    let mut png = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png, SIZE.0, SIZE.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&rgb)?;
    }
    Ok(Chart { svg, png })
}

/// Training loss by step (raw and smoothed) with validation loss, beside
/// validation accuracy by epoch; an interrupt is marked where it happened.
pub fn training_curves(run: &TrainRun) -> Result<Chart> {
    render(|root| draw_curves(root, run), |root| draw_curves(root, run))
}

/// What trains and what is frozen: per module (the embeddings, each layer,
/// the head), the trainable and frozen parameters as stacked bars.
pub fn freeze_chart(summary: &ModelSummary) -> Result<Chart> {
    render(|root| draw_freeze(root, summary), |root| draw_freeze(root, summary))
}

/// `encoder.layer.3` as `layer 3`; other modules as they are.
fn short_module(name: &str) -> String {
    match name.rsplit_once(".layer.") {
        Some((_, n)) => format!("layer {n}"),
        None => name.trim_start_matches("heads.").to_string(),
    }
}

fn draw_freeze<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, summary: &ModelSummary) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let rows = &summary.rows;
    let millions = |n: i64| n as f64 / 1e6;
    let top = rows.iter().map(|r| millions(r.trainable + r.frozen)).fold(0.0f64, f64::max).max(1e-6) * 1.25;
    let names: Vec<String> = rows.iter().map(|r| short_module(&r.module)).collect();
    let caption = format!("trainable {} of {} parameters ({})", crate::model::group_digits(summary.trainable()), crate::model::group_digits(summary.total()), crate::model::percent(summary.trainable(), summary.total()));
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5..(rows.len() as f64 - 0.5), 0.0..top)
        .map_err(err)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
    };
    chart
        .configure_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&label)
        .y_desc("parameters (millions)")
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let (blue, grey) = (RGBColor(31, 119, 180), RGBColor(170, 170, 170));
    let bar = |i: usize, lo: f64, hi: f64, color: RGBColor| Rectangle::new([(i as f64 - 0.35, lo), (i as f64 + 0.35, hi)], color.filled());
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| bar(i, 0.0, millions(r.trainable), blue)))
        .map_err(err)?
        .label("trainable")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], blue.filled()));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| bar(i, millions(r.trainable), millions(r.trainable + r.frozen), grey)))
        .map_err(err)?
        .label("frozen")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], grey.filled()));
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).border_style(BLACK.mix(0.3)).background_style(WHITE.mix(0.8)).label_font(("sans-serif", 12)).draw().map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The learning-rate range test: smoothed loss against the rate (log
/// scale), with the suggested rate marked.
pub fn lr_find_curve(found: &LrFind) -> Result<Chart> {
    render(|root| draw_lr_find(root, found), |root| draw_lr_find(root, found))
}

fn draw_lr_find<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, found: &LrFind) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let points: Vec<(f64, f64)> = found.lrs.iter().copied().zip(found.losses.iter().copied()).collect();
    let (lo_lr, hi_lr) = (found.lrs.first().copied().unwrap_or(1e-7), found.lrs.last().copied().unwrap_or(1.0).max(1e-6));
    let (lo, hi) = found.losses.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
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
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let blue = RGBColor(31, 119, 180);
    chart.draw_series(LineSeries::new(points.clone(), blue.stroke_width(2))).map_err(err)?.label("loss").legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(2)));
    if let Some(&(lr, loss)) = points.iter().find(|p| p.0 == found.suggestion) {
        let red = RGBColor(214, 39, 40);
        chart
            .draw_series(std::iter::once(Circle::new((lr, loss), 7, red.stroke_width(2))))
            .map_err(err)?
            .label(format!("suggested {lr:.1e}"))
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, red.stroke_width(2)));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK.mix(0.3)).background_style(WHITE.mix(0.8)).label_font(("sans-serif", 12)).draw().map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
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

fn draw_curves<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, run: &TrainRun) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(SIZE.0 * 58 / 100);
    let steps: Vec<(f64, f64)> = run.steps.iter().map(|s| (s.step as f64, s.loss)).collect();
    let smoothed = smooth(&steps.iter().map(|s| s.1).collect::<Vec<_>>(), 0.9);
    // Where each epoch ended, in steps, for the validation points.
    let steps_per_epoch = if run.epochs.is_empty() { 1.0 } else { run.steps.len() as f64 / run.epochs.len() as f64 };
    let val_loss: Vec<(f64, f64)> = run.epochs.iter().filter_map(|e| e.val.map(|v| (e.epoch as f64 * steps_per_epoch, v.loss))).collect();
    let max_step = steps.last().map(|s| s.0).unwrap_or(1.0).max(1.0);
    // Headroom above the highest loss keeps a band free for the legend.
    let max_loss = steps.iter().map(|s| s.1).chain(val_loss.iter().map(|v| v.1)).fold(0.0f64, f64::max).max(1e-3) * 1.3;
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_step, 0.0..max_loss)
        .map_err(err)?;
    chart.configure_mesh().x_desc("step").x_label_formatter(&|x| format!("{x:.0}")).light_line_style(WHITE.mix(0.0)).label_style(("sans-serif", 12)).draw().map_err(err)?;
    let light = RGBColor(31, 119, 180).mix(0.25);
    chart.draw_series(LineSeries::new(steps.clone(), light)).map_err(err)?;
    chart
        .draw_series(LineSeries::new(steps.iter().map(|s| s.0).zip(smoothed.iter().copied()), RGBColor(31, 119, 180).stroke_width(2)))
        .map_err(err)?
        .label("train (smoothed)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(31, 119, 180).stroke_width(2)));
    if !val_loss.is_empty() {
        let orange = RGBColor(255, 127, 14);
        chart
            .draw_series(LineSeries::new(val_loss.clone(), orange.stroke_width(2)).point_size(4))
            .map_err(err)?
            .label("validation")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], orange.stroke_width(2)));
    }
    if run.interrupted {
        let red = RGBColor(214, 39, 40);
        chart.draw_series(LineSeries::new(vec![(max_step, 0.0), (max_step, max_loss)], red.stroke_width(2))).map_err(err)?
            .label("interrupted")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2)));
    }
    // Losses fall, so the upper right is where the chart is empty.
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).border_style(BLACK.mix(0.3)).background_style(WHITE.mix(0.8)).label_font(("sans-serif", 12)).draw().map_err(err)?;

    // The task's headline metric: accuracy, or R² for regression (which can go below 0).
    let metric = run.epochs.iter().find_map(|e| e.val).map_or("accuracy", |v| v.task.headline_metric());
    let acc: Vec<(f64, f64)> = run.epochs.iter().filter_map(|e| e.val.and_then(|v| v.metric(metric)).map(|m| (e.epoch as f64, m))).collect();
    let max_epoch = run.epochs.len().max(1) as f64;
    let (lo, hi) = acc.iter().fold((1.0f64, 0.0f64), |(lo, hi), a| (lo.min(a.1), hi.max(a.1)));
    let (lo, hi) = if acc.is_empty() { (0.0, 1.0) } else { ((lo - 0.05).max(if metric == "r2" { f64::MIN } else { 0.0 }), (hi + 0.05).min(1.0)) };
    let title = if metric == "r2" { "validation R²" } else { "validation accuracy" };
    let caption = if acc.is_empty() { format!("{title} (no validation set)") } else { title.to_string() };
    let mut chart = ChartBuilder::on(&right)
        .caption(&caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..max_epoch + 0.5, lo..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(run.epochs.len().clamp(1, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let green = RGBColor(44, 160, 44);
    chart.draw_series(LineSeries::new(acc.clone(), green.stroke_width(2)).point_size(4)).map_err(err)?;
    // The best epoch: early stopping's choice when it ran, else the highest accuracy.
    let chosen = run.best_epoch.and_then(|b| acc.iter().copied().find(|a| a.0 as usize == b));
    if let Some(best) = chosen.or_else(|| acc.iter().copied().reduce(|a, b| if b.1 > a.1 { b } else { a })) {
        chart.draw_series(std::iter::once(Circle::new(best, 7, green.stroke_width(2)))).map_err(err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(best) + Text::new(format!("best {:.3}", best.1), (10, 8), ("sans-serif", 12).into_font().color(&BLACK)),
            ))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{EpochRecord, EvalResult, StepRecord};

    fn run(interrupted: bool) -> TrainRun {
        TrainRun {
            steps: (1..=40).map(|s| StepRecord { step: s, loss: 0.7 / (s as f64).sqrt(), lr: 1e-4 }).collect(),
            epochs: (1..=2).map(|e| EpochRecord { epoch: e, train_loss: 0.5, val: Some(EvalResult { f1: Some(0.7), loss: 0.4 / e as f64, accuracy: Some(0.7 + 0.05 * e as f64), rows: 10, task: crate::task::Task::Classify, mse: None, mae: None, r2: None }), elapsed: 1.0 }).collect(),
            interrupted,
            ..Default::default()
        }
    }

    #[test]
    fn training_curves_render_as_svg_and_png() {
        let chart = training_curves(&run(true)).unwrap();
        assert!(chart.svg.starts_with("<svg") && chart.svg.contains("validation accuracy") && chart.svg.contains("interrupted"));
        assert!(chart.svg.contains("best 0.800"));
        assert_eq!(&chart.png[1..4], b"PNG");
        assert!(chart.png.len() > 5_000, "the PNG is suspiciously small");
    }

    #[test]
    fn an_empty_run_still_draws() {
        let chart = training_curves(&TrainRun::default()).unwrap();
        assert!(chart.svg.contains("loss"));
    }

    #[test]
    fn smoothing_follows_an_exponential_average() {
        let s = smooth(&[1.0, 1.0, 1.0], 0.9);
        assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-12), "a constant stays constant: {s:?}");
        let s = smooth(&[1.0, 0.0], 0.5);
        assert!((s[1] - 1.0 / 3.0).abs() < 1e-12);
    }
}
