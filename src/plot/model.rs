//! The model's anatomy: what trains and what is frozen.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::bars::{category_axes, CategoryAxes};
use super::{box_mark, err, legend, Chart, Figure, BLUE, GREY};
use crate::model::ModelSummary;

/// What trains and what is frozen: per module (the embeddings, each layer,
/// the head), the trainable and frozen parameters as stacked bars.
pub fn freeze_chart(summary: &ModelSummary) -> Chart {
    Chart::new(Figure::Freeze(summary.clone()), (900, 340))
}

/// A count in a few characters: 1538 as 1.5k, 1,782,528 as 1.8M.
fn compact(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// `encoder.layer.3` as `layer 3`; other modules as they are.
fn short_module(name: &str) -> String {
    match name.rsplit_once(".layer.") {
        Some((_, n)) => format!("layer {n}"),
        None => name.trim_start_matches("heads.").to_string(),
    }
}

pub(super) fn draw_freeze<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, summary: &ModelSummary) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let rows = &summary.rows;
    let millions = |n: i64| n as f64 / 1e6;
    let top = rows.iter().map(|r| millions(r.trainable + r.frozen)).fold(0.0f64, f64::max).max(1e-6) * 1.25;
    let names: Vec<String> = rows.iter().map(|r| short_module(&r.module)).collect();
    let caption = format!(
        "trainable {} of {} parameters ({})",
        crate::numbers::group_digits(summary.trainable()),
        crate::numbers::group_digits(summary.total()),
        crate::numbers::percent(summary.trainable(), summary.total())
    );
    let axes = CategoryAxes { caption: (caption, 18), names: &names, top, y_desc: "parameters (millions)", y_label_width: 56, y_format: None };
    let mut chart = category_axes(root, axes)?;
    let bar = |i: usize, lo: f64, hi: f64, color: RGBColor| Rectangle::new([(i as f64 - 0.35, lo), (i as f64 + 0.35, hi)], color.filled());
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| bar(i, 0.0, millions(r.trainable), BLUE))).map_err(err)?.label("trainable").legend(box_mark(BLUE));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| bar(i, millions(r.trainable), millions(r.trainable + r.frozen), GREY)))
        .map_err(err)?
        .label("frozen")
        .legend(box_mark(GREY));
    // Each bar's size in words, so that a small head still reads.
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            EmptyElement::at((i as f64, millions(r.trainable + r.frozen))) + Text::new(compact(r.trainable + r.frozen), (-12, -16), ("sans-serif", 11).into_font().color(&BLACK))
        }))
        .map_err(err)?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}
