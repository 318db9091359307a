//! The model's anatomy: what trains and what is frozen.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LABEL_PX, WIDTH, box_mark, caption_size, category_label, char_width, err, legend, Chart, Figure, BLUE, GREY};
use crate::model::ModelSummary;

/// What trains and what is frozen: per module (the embeddings, each layer,
/// the head), the trainable and frozen parameters as stacked bars.
pub fn freeze_chart(summary: &ModelSummary) -> Chart {
    // About 22 pixels a module.
    Chart::new(Figure::Freeze(summary.clone()), (WIDTH, 300.max(100 + 22 * summary.rows.len() as u32)))
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
    let n = rows.len();
    let millions = |n: i64| n as f64 / 1e6;
    let right = rows.iter().map(|r| millions(r.trainable + r.frozen)).fold(0.0f64, f64::max).max(1e-6) * 1.3;
    // Modules down the side, the first at the top: names of any length read
    // in full, and a deep model only makes the chart taller.
    let names: Vec<String> = rows.iter().rev().map(|r| short_module(&r.module)).collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(4) as f64 * char_width(LABEL_PX);
    let caption = format!(
        "trainable {} of {} parameters ({})",
        crate::numbers::group_digits(summary.trainable()),
        crate::numbers::group_digits(summary.total()),
        crate::numbers::percent(summary.trainable(), summary.total())
    );
    let mut chart = ChartBuilder::on(root)
        .caption(&caption, ("sans-serif", caption_size(&caption, root.dim_in_pixel().0, 18)))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(name_width as u32 + 14)
        .build_cartesian_2d(0.0..right, -0.5..(n as f64 - 0.5))
        .map_err(err)?;
    chart
        .configure_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&category_label(&names))
        .x_desc("parameters (millions)")
        .disable_y_mesh()
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", LABEL_PX))
        .draw()
        .map_err(err)?;
    let y_of = |i: usize| (n - 1 - i) as f64;
    let bar = |i: usize, lo: f64, hi: f64, color: RGBColor| Rectangle::new([(lo, y_of(i) - 0.35), (hi, y_of(i) + 0.35)], color.filled());
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| bar(i, 0.0, millions(r.trainable), BLUE))).map_err(err)?.label("trainable").legend(box_mark(BLUE));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| bar(i, millions(r.trainable), millions(r.trainable + r.frozen), GREY)))
        .map_err(err)?
        .label("frozen")
        .legend(box_mark(GREY));
    // Each bar's size in words, so that a small head still reads.
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            EmptyElement::at((millions(r.trainable + r.frozen), y_of(i))) + Text::new(compact(r.trainable + r.frozen), (6, -(LABEL_PX / 2.5) as i32), ("sans-serif", LABEL_PX).into_font().color(&BLACK))
        }))
        .map_err(err)?;
    // The head's bars at the bottom are short: the lower right is free.
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}
