//! Charts drawn with plotters, as SVG (notebooks) and PNG (files), with an
//! embedded font so that no system fonts are needed.
//!
//! A [`Chart`] holds what it shows, not pixels: it is drawn when asked for
//! SVG or PNG, at its size and with its title, so that a script can change
//! either before saving.

mod bars;
mod data;
mod evaluation;
mod model;
mod training;

use std::path::Path;
use std::sync::{Arc, Once};

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

pub use data::{class_balance, heat_map, image_grid, token_lengths, ImageTile};
pub use evaluation::{class_scores, confusion_matrix};
pub use model::freeze_chart;
pub use training::{compare_bars, compare_runs, layer_norms, lr_find_curve, lr_schedule, smooth, training_curves, training_curves_with, CurveOptions, NamedRun};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The Okabe-Ito palette, which stays distinct under the common forms of
/// colour blindness: blue, orange, bluish green, vermillion, sky blue,
/// reddish purple, yellow, grey.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(86, 180, 233),
    RGBColor(204, 121, 167),
    RGBColor(240, 228, 66),
    RGBColor(120, 120, 120),
];
const BLUE: RGBColor = PALETTE[0];
const ORANGE: RGBColor = PALETTE[1];
const GREEN: RGBColor = PALETTE[2];
const VERMILLION: RGBColor = PALETTE[3];
const GREY: RGBColor = RGBColor(175, 175, 175);

/// Tick labels, legends and annotations: plotters draws a font of size `s`
/// at `s / 1.24` pixels per em, so this is text 12.5 pixels high.
const LABEL_PX: f64 = 15.5;
/// The width of the charts that fill a notebook's output: a notebook shows
/// a wider image shrunk to its output area, 548 pixels in a 1,000-pixel
/// JupyterLab 4 window with the file browser open (measured), where labels
/// drawn 600 wide still read at 11.4 pixels.
const WIDTH: u32 = 600;

/// The smallest and largest side a chart may have, in pixels.
pub const SIDE_LIMITS: (u32, u32) = (120, 4000);

/// What a chart shows.
#[derive(Debug, Clone)]
enum Figure {
    Curves(crate::train::TrainRun, CurveOptions),
    Compare(Vec<NamedRun>),
    CompareBars(Vec<NamedRun>),
    LrSchedule(crate::train::TrainRun),
    LrFind(crate::train::LrFind),
    LayerNorms(crate::train::TrainRun),
    Freeze(crate::model::ModelSummary),
    Confusion { labels: Vec<String>, counts: Vec<Vec<i64>> },
    ClassScores { labels: Vec<String>, scores: Vec<crate::train::metrics::ClassScores> },
    ClassBalance { name: String, labels: Vec<String>, counts: Vec<usize> },
    Lengths { name: String, lengths: Vec<usize>, max_len: usize },
    Images { rows: Vec<(String, Vec<ImageTile>)> },
}

/// A chart: what it shows, its size and an optional title, drawn to SVG or
/// PNG on request.
#[derive(Debug, Clone)]
pub struct Chart {
    figure: Arc<Figure>,
    title: Option<String>,
    size: (u32, u32),
}

impl Chart {
    fn new(figure: Figure, size: (u32, u32)) -> Self {
        Self { figure: Arc::new(figure), title: None, size }
    }

    /// What kind of chart this is, e.g. `training curves`.
    pub fn kind(&self) -> &'static str {
        match *self.figure {
            Figure::Curves(..) => "training curves",
            Figure::Compare(_) => "run comparison",
            Figure::CompareBars(_) => "run comparison bars",
            Figure::LrSchedule(_) => "learning-rate schedule",
            Figure::LrFind(_) => "learning-rate range test",
            Figure::LayerNorms(_) => "layer norms",
            Figure::Freeze(_) => "trainable and frozen parameters",
            Figure::Confusion { .. } => "confusion matrix",
            Figure::ClassScores { .. } => "per-class scores",
            Figure::ClassBalance { .. } => "class balance",
            Figure::Lengths { .. } => "token lengths",
            Figure::Images { .. } => "image grid",
        }
    }

    /// The title drawn above the chart, if one was set.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// The same chart with a title drawn above it.
    pub fn with_title(mut self, title: &str) -> Self {
        self.title = Some(title.to_string()).filter(|t| !t.trim().is_empty());
        self
    }

    /// The same chart at another size; each side must be within [`SIDE_LIMITS`].
    pub fn with_size(mut self, width: u32, height: u32) -> Result<Self> {
        let (lo, hi) = SIDE_LIMITS;
        for (side, v) in [("width", width), ("height", height)] {
            if !(lo..=hi).contains(&v) {
                bail!("a chart's {side} must be between {lo} and {hi} pixels; got {v}");
            }
        }
        self.size = (width, height);
        Ok(self)
    }

    /// The chart as SVG text.
    pub fn svg(&self) -> Result<String> {
        register_font();
        if let Figure::Images { rows } = &*self.figure {
            return data::image_grid_svg(rows, self.size, self.title.as_deref());
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            self.draw(root)?;
        }
        Ok(svg)
    }

    /// The chart as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        register_font();
        let (w, h) = self.size;
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, self.size).into_drawing_area();
            self.draw(root)?;
        }
        encode_png(&rgb, w, h, png::ColorType::Rgb)
    }

    /// Writes the chart to `path` as SVG or PNG, by its extension, through
    /// a temporary file and a rename, so that a failed write leaves no half file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => self.svg()?.into_bytes(),
            Some("png") => self.png()?,
            _ => bail!("cannot tell the format of {}: name the file .svg or .png", path.display()),
        };
        crate::files::write_file(path, &bytes)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(err)?;
        let area = match &self.title {
            Some(t) => root.titled(t, ("sans-serif", 22)).map_err(err)?,
            None => root.clone(),
        };
        match &*self.figure {
            Figure::Curves(run, opts) => training::draw_curves(&area, run, opts)?,
            Figure::Compare(runs) => training::draw_compare(&area, runs)?,
            Figure::CompareBars(runs) => training::draw_compare_bars(&area, runs)?,
            Figure::LrSchedule(run) => training::draw_lr_schedule(&area, run)?,
            Figure::LrFind(found) => training::draw_lr_find(&area, found)?,
            Figure::LayerNorms(run) => training::draw_layer_norms(&area, run)?,
            Figure::Freeze(summary) => model::draw_freeze(&area, summary)?,
            Figure::Confusion { labels, counts } => evaluation::draw_confusion(&area, labels, counts)?,
            Figure::ClassScores { labels, scores } => evaluation::draw_scores(&area, labels, scores)?,
            Figure::ClassBalance { name, labels, counts } => data::draw_balance(&area, name, labels, counts)?,
            Figure::Lengths { name, lengths, max_len } => data::draw_lengths(&area, name, lengths, *max_len)?,
            Figure::Images { rows } => data::draw_images(&area, rows)?,
        }
        root.present().map_err(err)?;
        Ok(())
    }
}

impl std::fmt::Display for Chart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chart: {}", self.title.as_deref().unwrap_or(self.kind()))?;
        write!(f, " ({}x{}); save it with .save(\"chart.png\") or .save(\"chart.svg\")", self.size.0, self.size.1)
    }
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

fn encode_png(pixels: &[u8], w: u32, h: u32, color: png::ColorType) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(pixels)?;
    }
    Ok(out)
}

/// A legend box in the house style at `position`.
fn legend<'a, DB: DrawingBackend + 'a, X: plotters::coord::ranged1d::Ranged, Y: plotters::coord::ranged1d::Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart.configure_series_labels().position(position).border_style(BLACK.mix(0.3)).background_style(WHITE.mix(0.85)).label_font(("sans-serif", LABEL_PX)).draw().map_err(err)
}

/// The average width of a character drawn at plotters' font size `size`:
/// DejaVu Sans averages about 0.6 em, and plotters draws `size / 1.24`
/// pixels per em.
fn char_width(size: f64) -> f64 {
    size / 1.24 * 0.6
}

/// A caption's font size: `size`, or smaller where the text would be wider
/// than `width` pixels.
fn caption_size(text: &str, width: u32, size: u32) -> f64 {
    let fits = width.saturating_sub(20) as f64 / (char_width(1.0) * text.chars().count().max(1) as f64);
    (size as f64).min(fits).max(LABEL_PX * 0.8)
}

/// Category names shortened so that each fits its slot of `slot` pixels
/// along an axis.
fn fit_names(names: &[String], slot: f64) -> Vec<String> {
    let fits = ((slot - 4.0) / char_width(LABEL_PX)).floor().max(3.0) as usize;
    names.iter().map(|name| shorten(name, fits)).collect()
}

/// A line legend mark in `color`.
fn line_mark(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
}

/// A box legend mark in `color`.
fn box_mark(color: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
}

/// An axis label formatter for categories at 0, 1, 2, ...: the name at each
/// whole number, nothing between.
fn category_label(names: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
    }
}

/// `n` shortened to `max` characters with an ellipsis.
fn shorten(n: &str, max: usize) -> String {
    if n.chars().count() <= max { n.to_string() } else { n.chars().take(max.saturating_sub(1)).collect::<String>() + "…" }
}

/// Whether an SVG has a text element reading exactly `text` (plotters puts
/// the text on a line of its own).
#[cfg(test)]
pub(crate) fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">\n{text}\n</text>")) || svg.contains(&format!(">{text}</text>"))
}

/// Asserts that an SVG contains each of `wanted`: `=name` as a whole text
/// element, anything else as a substring.
#[cfg(test)]
pub(crate) fn assert_svg_has(svg: &str, wanted: &[&str]) {
    for w in wanted {
        let found = match w.strip_prefix('=') {
            Some(t) => has_text(svg, t),
            None => svg.contains(w),
        };
        assert!(found, "the SVG lacks {w:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_size(png: &[u8]) -> (u32, u32) {
        let reader = png::Decoder::new(std::io::Cursor::new(png.to_vec())).read_info().expect("a PNG");
        (reader.info().width, reader.info().height)
    }

    #[test]
    fn size_and_title_change_what_is_drawn() {
        let chart = class_balance("demo", &["cat".into(), "dog".into()], &[3, 5]).with_size(400, 300).unwrap().with_title("Pets");
        assert_eq!(png_size(&chart.png().unwrap()), (400, 300));
        let svg = chart.svg().unwrap();
        assert!(svg.contains("width=\"400\"") && has_text(&svg, "Pets"), "{}", &svg[..200]);
        let err = chart.clone().with_size(10, 300).unwrap_err().to_string();
        assert!(err.contains("between 120 and 4000"), "{err}");
    }

    #[test]
    fn every_kind_of_chart_draws_an_svg_and_a_png_of_its_size() {
        use crate::train::{EpochRecord, EvalResult, LayerStats, StepRecord, TrainRun};
        let val = EvalResult { loss: 0.5, task: crate::task::Task::Classify, accuracy: Some(0.8), f1: Some(0.7), mse: None, mae: None, r2: None, rows: 10 };
        let run = TrainRun {
            steps: (1..=20).map(|s| StepRecord { step: s, loss: 1.0 / s as f64, lr: 1e-4, grad_norm: None }).collect(),
            epochs: vec![EpochRecord { epoch: 1, train_loss: 0.6, val: Some(val), elapsed: 1.0 }, EpochRecord { epoch: 2, train_loss: 0.4, val: Some(val), elapsed: 2.0 }],
            layers: ["head", "encoder.layer.0"].iter().flat_map(|g| (1..=2).map(move |e| LayerStats { epoch: e, group: g.to_string(), weight_norm: 3.0, change: 0.01 * e as f64, grad_norm: 0.5 })).collect(),
            ..Default::default()
        };
        let named = vec![NamedRun { name: "a".into(), run: run.clone() }, NamedRun { name: "b".into(), run: run.clone() }];
        let labels: Vec<String> = vec!["x".into(), "y".into()];
        let scores = crate::train::metrics::Confusion { counts: vec![vec![3, 1], vec![0, 4]] };
        let summary = crate::model::ModelSummary {
            name: "m".into(),
            labels: labels.clone(),
            task: crate::task::Task::Classify,
            pooling: None,
            device: tch::Device::Cpu,
            rows: vec![crate::model::ModuleCount { module: "features.0".into(), trainable: 10, frozen: 0 }, crate::model::ModuleCount { module: "classifier".into(), trainable: 0, frozen: 5 }],
            batch_norm: None,
            storage: Default::default(),
        };
        let found = crate::train::LrFind { lrs: vec![1e-6, 1e-5, 1e-4], losses: vec![0.7, 0.6, 0.9], suggestion: 1e-5, min_loss_lr: 1e-6 };
        let tile = ImageTile { pixels: vec![9; 3 * 4 * 4], shape: [3, 4, 4], caption: "c".into() };
        let charts = [
            training_curves(&run),
            compare_runs(&named),
            compare_bars(&named),
            lr_schedule(&run),
            lr_find_curve(&found),
            layer_norms(&run),
            freeze_chart(&summary),
            confusion_matrix(&labels, &scores.counts).unwrap(),
            class_scores(&labels, &scores.per_class()).unwrap(),
            class_balance("d", &labels, &[4, 4]),
            token_lengths("d", &[3, 9, 12], 8),
            image_grid(vec![("row".into(), vec![tile])]).unwrap(),
        ];
        for chart in charts {
            let svg = chart.svg().unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", chart.kind());
            assert_eq!(png_size(&chart.png().unwrap()), chart.size(), "{}", chart.kind());
        }
    }

    #[test]
    fn save_picks_the_format_from_the_extension_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let chart = class_balance("demo", &["a".into()], &[1]);
        chart.save(&dir.path().join("c.svg")).unwrap();
        chart.save(&dir.path().join("sub/c.png")).unwrap();
        assert!(std::fs::read_to_string(dir.path().join("c.svg")).unwrap().starts_with("<svg"));
        assert_eq!(&std::fs::read(dir.path().join("sub/c.png")).unwrap()[1..4], b"PNG");
        let err = chart.save(&dir.path().join("c.jpg")).unwrap_err().to_string();
        assert!(err.contains(".svg or .png"), "{err}");
        assert!(!dir.path().join("c.jpg").exists());
    }
}
