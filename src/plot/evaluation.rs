//! Evaluation charts: the confusion matrix and per-class scores.

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::bars::{category_axes, CategoryAxes};
use super::{LABEL_PX, caption_size, box_mark, category_label, err, legend, shorten, Chart, Figure, BLUE, GREEN, ORANGE};
use crate::train::metrics::ClassScores;

/// The confusion matrix as a heatmap: true classes down, predicted classes
/// across, each cell with its count and shaded by its share of the row
/// (so the diagonal is each class's recall).
pub fn confusion_matrix(labels: &[String], counts: &[Vec<i64>]) -> Result<Chart> {
    if counts.len() != labels.len() || counts.iter().any(|r| r.len() != labels.len()) {
        bail!("a confusion matrix for {} classes needs {0} rows of {0} counts", labels.len());
    }
    let side = (160 + 48 * labels.len() as u32).clamp(360, 1400);
    Ok(Chart::new(Figure::Confusion { labels: labels.to_vec(), counts: counts.to_vec() }, (side + 60, side)))
}

/// Precision, recall and F1 of each class as grouped bars.
pub fn class_scores(labels: &[String], scores: &[ClassScores]) -> Result<Chart> {
    if scores.len() != labels.len() {
        bail!("{} class names for {} classes' scores", labels.len(), scores.len());
    }
    let width = (200 + 70 * labels.len() as u32).clamp(480, 1600);
    Ok(Chart::new(Figure::ClassScores { labels: labels.to_vec(), scores: scores.to_vec() }, (width, 340)))
}

pub(super) fn draw_confusion<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, labels: &[String], counts: &[Vec<i64>]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let n = labels.len();
    let names: Vec<String> = labels.iter().map(|l| shorten(l, 12)).collect();
    // Row i is drawn at y = n-1-i so that the first class is at the top.
    let rows_down: Vec<String> = names.iter().rev().cloned().collect();
    let total: i64 = counts.iter().flatten().sum();
    let correct: i64 = (0..n).map(|i| counts[i][i]).sum();
    let caption = format!("confusion matrix ({} rows, accuracy {:.3})", total, if total > 0 { correct as f64 / total as f64 } else { 0.0 });
    let mut chart = ChartBuilder::on(root)
        .caption(&caption, ("sans-serif", caption_size(&caption, root.dim_in_pixel().0, 18)))
        .margin(10)
        .x_label_area_size(48)
        .y_label_area_size(96)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), -0.5..(n as f64 - 0.5))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n * 2 + 1)
        .y_labels(n * 2 + 1)
        .x_label_formatter(&category_label(&names))
        .y_label_formatter(&category_label(&rows_down))
        .x_desc("predicted class")
        .y_desc("true class")
        .disable_mesh()
        .label_style(("sans-serif", LABEL_PX))
        .draw()
        .map_err(err)?;
    let shade = |share: f64| {
        let mix = |c: u8| (255.0 - (255.0 - f64::from(c)) * share).round() as u8;
        RGBColor(mix(BLUE.0), mix(BLUE.1), mix(BLUE.2))
    };
    let mut cells = Vec::new();
    let mut texts = Vec::new();
    for (i, row) in counts.iter().enumerate() {
        let row_total: i64 = row.iter().sum();
        for (j, &c) in row.iter().enumerate() {
            let share = if row_total > 0 { c as f64 / row_total as f64 } else { 0.0 };
            let (x, y) = (j as f64, (n - 1 - i) as f64);
            cells.push(Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], shade(share).filled()));
            let ink = if share > 0.55 { WHITE } else { BLACK };
            let font = ("sans-serif", LABEL_PX).into_font().color(&ink).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
            texts.push(Text::new(c.to_string(), (x, y), font));
        }
    }
    chart.draw_series(cells).map_err(err)?;
    chart.draw_series(texts).map_err(err)?;
    Ok(())
}

pub(super) fn draw_scores<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, labels: &[String], scores: &[ClassScores]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let n = labels.len();
    let names: Vec<String> = labels.iter().map(|l| shorten(l, 12)).collect();
    let macro_f1 = scores.iter().map(|s| s.f1).sum::<f64>() / n.max(1) as f64;
    let y_format = |y: &f64| if *y <= 1.0 + 1e-9 { format!("{y:.1}") } else { String::new() };
    let caption = (format!("precision, recall and F1 per class (macro F1 {macro_f1:.3})"), 18);
    let mut chart = category_axes(root, CategoryAxes { caption, names: &names, top: 1.3, y_desc: "score", y_label_width: 50, y_format: Some(&y_format) })?;
    let metrics: [(&str, RGBColor, fn(&ClassScores) -> f64); 3] = [("precision", BLUE, |s| s.precision), ("recall", ORANGE, |s| s.recall), ("F1", GREEN, |s| s.f1)];
    for (k, (name, color, pick)) in metrics.into_iter().enumerate() {
        let offset = (k as f64 - 1.0) * 0.26;
        chart
            .draw_series(scores.iter().enumerate().map(|(i, s)| Rectangle::new([(i as f64 + offset - 0.12, 0.0), (i as f64 + offset + 0.12, pick(s))], color.filled())))
            .map_err(err)?
            .label(name)
            .legend(box_mark(color));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::assert_svg_has;
    use crate::train::metrics::Confusion;

    #[test]
    fn the_heatmap_shows_every_count_and_class_name() {
        let mut c = Confusion::new(3);
        c.add(&[0, 0, 1, 2, 2, 2], &[0, 1, 1, 2, 2, 0]);
        let labels: Vec<String> = ["cat", "dog", "bird"].map(String::from).to_vec();
        let chart = confusion_matrix(&labels, &c.counts).unwrap();
        let svg = chart.svg().unwrap();
        assert_svg_has(&svg, &["predicted class", "true class", "=cat", "=dog", "=bird", "accuracy 0.667", "=2"]);
        assert!(svg.matches("<rect").count() >= 9, "one cell per pair of classes");
        assert!(confusion_matrix(&labels[..2], &c.counts).is_err());
        let png = chart.png().unwrap();
        let reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), chart.size());
    }

    #[test]
    fn score_bars_have_a_legend_entry_per_metric() {
        let mut c = Confusion::new(2);
        c.add(&[0, 0, 1, 1], &[0, 1, 1, 1]);
        let labels: Vec<String> = ["neg", "pos"].map(String::from).to_vec();
        let svg = class_scores(&labels, &c.per_class()).unwrap().svg().unwrap();
        assert_svg_has(&svg, &["=precision", "=recall", "=F1", "=neg", "=pos", "macro F1 0.733"]);
    }
}
