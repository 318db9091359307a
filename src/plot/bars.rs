//! The axes that every bar chart over categories shares (class balance,
//! per-class scores, the freeze chart): one slot per category along x,
//! labelled with its name, and values from zero along y.

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{LABEL_PX, caption_size, category_label, err, fit_names};

/// What differs between the bar charts' axes.
pub(super) struct CategoryAxes<'a> {
    /// The chart's caption and its font size.
    pub caption: (String, u32),
    /// The categories' names, in bar order.
    pub names: &'a [String],
    /// The top of the y axis.
    pub top: f64,
    /// The y axis's description.
    pub y_desc: &'a str,
    /// The width of the y labels' area, in pixels.
    pub y_label_width: u32,
    /// How y values are written (plotters' default when `None`).
    pub y_format: Option<&'a dyn Fn(&f64) -> String>,
}

/// Draws the axes; bar `i` is centred on x = `i`.
pub(super) fn category_axes<'r, DB: DrawingBackend>(
    root: &'r DrawingArea<DB, Shift>,
    axes: CategoryAxes,
) -> Result<ChartContext<'r, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>>
where
    DB::ErrorType: 'static,
{
    let n = axes.names.len();
    let caption_px = caption_size(&axes.caption.0, root.dim_in_pixel().0, axes.caption.1);
    let mut chart = ChartBuilder::on(root)
        .caption(axes.caption.0, ("sans-serif", caption_px))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(axes.y_label_width)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..axes.top)
        .map_err(err)?;
    let names = fit_names(axes.names, chart.plotting_area().dim_in_pixel().0 as f64 / n.max(1) as f64);
    let x_format = category_label(&names);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(n * 2 + 1)
        .x_label_formatter(&x_format)
        .y_desc(axes.y_desc)
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", LABEL_PX));
    if let Some(f) = axes.y_format {
        mesh.y_label_formatter(f);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}
