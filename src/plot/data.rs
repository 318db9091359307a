//! Data charts: class balance, token lengths, and a grid of images.

use anyhow::{bail, Result};
use base64::Engine as _;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::bars::{category_axes, CategoryAxes};
use super::{LABEL_PX, WIDTH, caption_size, err, legend, line_mark, shorten, Chart, Figure, BLUE, VERMILLION};

/// One image of a grid: pixels 0-255 laid out `[channels, height, width]`
/// (1 channel for grey, 3 for colour) and the caption under it.
#[derive(Debug, Clone)]
pub struct ImageTile {
    /// Pixel values, channel after channel.
    pub pixels: Vec<u8>,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Shown under the image (its label).
    pub caption: String,
}

/// How many rows each class has, as bars with their counts, and the
/// share of the largest class in the caption.
pub fn class_balance(name: &str, labels: &[String], counts: &[usize]) -> Chart {
    let width = (200 + 60 * labels.len() as u32).clamp(600, 1600);
    Chart::new(Figure::ClassBalance { name: name.to_string(), labels: labels.to_vec(), counts: counts.to_vec() }, (width, 320))
}

/// A histogram of token lengths (before truncation) with `max_len` marked,
/// and how many rows it cuts.
pub fn token_lengths(name: &str, lengths: &[usize], max_len: usize) -> Chart {
    Chart::new(Figure::Lengths { name: name.to_string(), lengths: lengths.to_vec(), max_len }, (WIDTH, 300))
}

/// Images in labelled rows (e.g. `original` and `augmented`), each with its caption.
pub fn image_grid(rows: Vec<(String, Vec<ImageTile>)>) -> Result<Chart> {
    for (_, tiles) in &rows {
        for t in tiles {
            let [c, h, w] = t.shape;
            if !matches!(c, 1 | 3) || t.pixels.len() != c * h * w || h == 0 || w == 0 {
                bail!("an image tile must be 1 (grey) or 3 (colour) channels of {c}x{h}x{w} pixels; got {} values", t.pixels.len());
            }
        }
    }
    let columns = rows.iter().map(|r| r.1.len()).max().unwrap_or(1).max(1) as u32;
    let (cell_w, cell_h) = cell_size(&rows);
    let size = (110 + columns * cell_w, 10 + rows.len().max(1) as u32 * cell_h);
    let size = (size.0.clamp(super::SIDE_LIMITS.0, super::SIDE_LIMITS.1), size.1.clamp(super::SIDE_LIMITS.0, super::SIDE_LIMITS.1));
    Ok(Chart::new(Figure::Images { rows }, size))
}

/// An image beside itself with a heat map over it (Grad-CAM): `heat` is
/// `[h, w]` values from 0 to 1 for the image's pixels, drawn in a blue to
/// red colour scale at half opacity.
pub fn heat_map(image: ImageTile, heat: &[f32], caption: &str) -> Result<Chart> {
    let [c, h, w] = image.shape;
    if heat.len() != h * w {
        bail!("the heat map has {} values for a {h}x{w} image", heat.len());
    }
    let channel = |ch: usize, k: usize| f32::from(image.pixels[if c == 3 { ch * h * w + k } else { k }]);
    let mut overlay = vec![0u8; 3 * h * w];
    for (k, &t) in heat.iter().enumerate() {
        // The "jet" scale: blue, cyan, yellow, red.
        let t = t.clamp(0.0, 1.0);
        let colour = [(1.5 - (4.0 * t - 3.0).abs()).clamp(0.0, 1.0), (1.5 - (4.0 * t - 2.0).abs()).clamp(0.0, 1.0), (1.5 - (4.0 * t - 1.0).abs()).clamp(0.0, 1.0)];
        for (ch, v) in colour.iter().enumerate() {
            overlay[ch * h * w + k] = (0.5 * channel(ch, k) + 0.5 * 255.0 * v).round() as u8;
        }
    }
    let over = ImageTile { pixels: overlay, shape: [3, h, w], caption: caption.to_string() };
    image_grid(vec![("Grad-CAM".to_string(), vec![ImageTile { caption: "input".into(), ..image }, over])])
}

/// The characters of a caption a cell of `cell_w` pixels holds (about 7
/// pixels a character at 12 px; at least 12).
fn caption_room(cell_w: u32) -> usize {
    ((cell_w as usize).saturating_sub(12) / 7).max(12)
}

/// A tile's cell: the image scaled up to about 84 pixels, and room for its caption.
fn cell_size(rows: &[(String, Vec<ImageTile>)]) -> (u32, u32) {
    let (h, w) = rows.iter().flat_map(|r| &r.1).map(|t| (t.shape[1], t.shape[2])).max().unwrap_or((28, 28));
    let scale = (84 / h.max(w).max(1)).max(1) as u32;
    (w as u32 * scale + 12, h as u32 * scale + 28)
}

pub(super) fn draw_balance<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, name: &str, labels: &[String], counts: &[usize]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let names: Vec<String> = labels.iter().map(|l| shorten(l, 12)).collect();
    let total: usize = counts.iter().sum();
    let largest = counts.iter().copied().max().unwrap_or(0);
    let caption = format!("{}: {} rows, largest class {:.0}%", shorten(name, 32), crate::numbers::group_digits(total as i64), 100.0 * largest as f64 / total.max(1) as f64);
    let top = largest.max(1) as f64 * 1.2;
    let y_format = |y: &f64| format!("{y:.0}");
    let axes = CategoryAxes { caption: (caption, 16), names: &names, top, y_desc: "rows", y_label_width: 56, y_format: Some(&y_format) };
    let mut chart = category_axes(root, axes)?;
    chart.draw_series(counts.iter().enumerate().map(|(i, &n)| Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, n as f64)], BLUE.filled()))).map_err(err)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &n)| EmptyElement::at((i as f64, n as f64)) + Text::new(n.to_string(), (-10, -16), ("sans-serif", LABEL_PX).into_font().color(&BLACK))))
        .map_err(err)?;
    Ok(())
}

/// The x axis of a length histogram: to the longest row, or, on a long
/// tail (the longest more than twice the 99th percentile and max_len), to
/// that percentile, with the rows beyond it counted in the last bar.
#[derive(Debug, PartialEq)]
struct LengthAxis {
    /// The axis's last length.
    end: usize,
    /// When clipped: the rows past `end`, and the longest.
    clipped: Option<(usize, usize)>,
}

impl LengthAxis {
    fn of(lengths: &[usize], max_len: usize) -> Self {
        let longest = lengths.iter().copied().max().unwrap_or(1);
        let mut sorted = lengths.to_vec();
        sorted.sort_unstable();
        let p99 = sorted.get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1))).copied().unwrap_or(0);
        let keep = p99.max(max_len).max(1);
        if longest > 2 * keep {
            Self { end: keep, clipped: Some((lengths.iter().filter(|&&l| l > keep).count(), longest)) }
        } else {
            Self { end: longest.max(max_len).max(1), clipped: None }
        }
    }
}

pub(super) fn draw_lengths<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, name: &str, lengths: &[usize], max_len: usize) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let axis = LengthAxis::of(lengths, max_len);
    let bins = 40usize;
    let width = axis.end.div_ceil(bins).max(1);
    let mut counts = vec![0usize; axis.end / width + 1];
    for &l in lengths {
        counts[l.min(axis.end) / width] += 1;
    }
    let cut = lengths.iter().filter(|&&l| l > max_len).count();
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let clipped = match axis.clipped {
        Some((rows, longest)) => format!("; the last bar holds {rows} longer rows, up to {longest}"),
        None => String::new(),
    };
    let caption = format!(
        "token lengths of {} (median {median}; {cut} of {} rows longer than max_len, {:.1}%{clipped})",
        shorten(name, 30),
        lengths.len(),
        100.0 * cut as f64 / lengths.len().max(1) as f64
    );
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.25;
    let x_end = (counts.len() * width) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(&caption, ("sans-serif", caption_size(&caption, root.dim_in_pixel().0, 16)))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_end, 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("tokens per row (special tokens included)")
        .y_desc("rows")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .disable_x_mesh()
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", LABEL_PX))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &n)| Rectangle::new([((i * width) as f64, 0.0), (((i + 1) * width) as f64, n as f64)], BLUE.mix(0.8).filled())))
        .map_err(err)?
        .label("rows")
        .legend(super::box_mark(BLUE));
    let m = max_len as f64;
    chart.draw_series(DashedLineSeries::new(vec![(m, 0.0), (m, top)], 6, 4, VERMILLION.stroke_width(2))).map_err(err)?.label(format!("max_len {max_len}")).legend(line_mark(VERMILLION));
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// The grey or RGB colour of pixel (y, x) of a tile.
fn pixel(t: &ImageTile, y: usize, x: usize) -> RGBColor {
    let [c, h, w] = t.shape;
    let at = |ch: usize| t.pixels[(ch * h + y) * w + x];
    if c == 1 { RGBColor(at(0), at(0), at(0)) } else { RGBColor(at(0), at(1), at(2)) }
}

pub(super) fn draw_images<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, rows: &[(String, Vec<ImageTile>)]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (cell_w, cell_h) = cell_size(rows);
    let font = ("sans-serif", LABEL_PX).into_font().color(&BLACK);
    for (r, (row_name, tiles)) in rows.iter().enumerate() {
        let y0 = 10 + r as i32 * cell_h as i32;
        root.draw(&Text::new(shorten(row_name, 14), (6, y0 + cell_h as i32 / 2 - 14), font.clone())).map_err(err)?;
        for (k, t) in tiles.iter().enumerate() {
            let [_, h, w] = t.shape;
            let scale = ((cell_w - 12) as usize / w.max(1)).max(1) as i32;
            let x0 = 110 + k as i32 * cell_w as i32;
            for y in 0..h {
                for x in 0..w {
                    let (px, py) = (x0 + x as i32 * scale, y0 + y as i32 * scale);
                    root.draw(&Rectangle::new([(px, py), (px + scale, py + scale)], pixel(t, y, x).filled())).map_err(err)?;
                }
            }
            root.draw(&Text::new(shorten(&t.caption, caption_room(cell_w)), (x0, y0 + h as i32 * scale + 4), font.clone())).map_err(err)?;
        }
    }
    Ok(())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The grid as SVG: each image an embedded PNG (one `<image>` rather than a
/// rectangle per pixel), captions and row names as text.
pub(super) fn image_grid_svg(rows: &[(String, Vec<ImageTile>)], size: (u32, u32), title: Option<&str>) -> Result<String> {
    let (cell_w, cell_h) = cell_size(rows);
    let top = if title.is_some() { 34 } else { 0 };
    let mut svg = format!(
        "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {0} {1}\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"#FFFFFF\"/>\n",
        size.0,
        size.1 + top
    );
    if let Some(t) = title {
        svg += &format!("<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"22\">{}</text>\n", size.0 / 2, xml_escape(t));
    }
    for (r, (row_name, tiles)) in rows.iter().enumerate() {
        let y0 = top as usize + 10 + r * cell_h as usize;
        svg += &format!("<text x=\"6\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\">{}</text>\n", y0 + cell_h as usize / 2 - 4, xml_escape(&shorten(row_name, 14)));
        for (k, t) in tiles.iter().enumerate() {
            let [c, h, w] = t.shape;
            let scale = ((cell_w - 12) as usize / w.max(1)).max(1);
            let rgb: Vec<u8> = (0..h * w).flat_map(|p| if c == 1 { [t.pixels[p]; 3] } else { [t.pixels[p], t.pixels[h * w + p], t.pixels[2 * h * w + p]] }).collect();
            let png = super::encode_png(&rgb, w as u32, h as u32, png::ColorType::Rgb)?;
            let x0 = 110 + k * cell_w as usize;
            svg += &format!(
                "<image x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                w * scale,
                h * scale,
                base64::engine::general_purpose::STANDARD.encode(png)
            );
            svg += &format!("<text x=\"{x0}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\">{}</text>\n", y0 + h * scale + 14, xml_escape(&shorten(&t.caption, caption_room(cell_w))));
        }
    }
    svg += "</svg>\n";
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{assert_svg_has, has_text};

    fn png_size(png: &[u8]) -> (u32, u32) {
        let reader = png::Decoder::new(std::io::Cursor::new(png.to_vec())).read_info().unwrap();
        (reader.info().width, reader.info().height)
    }

    #[test]
    fn class_balance_labels_each_bar() {
        let chart = class_balance("reviews", &["neg".into(), "pos".into()], &[30, 70]);
        let svg = chart.svg().unwrap();
        assert_svg_has(&svg, &["=neg", "=pos", "=30", "=70", "reviews: 100 rows, largest class 70%"]);
        assert_eq!(png_size(&chart.png().unwrap()), chart.size());
    }

    #[test]
    fn the_length_histogram_marks_max_len_and_counts_cut_rows() {
        let lengths: Vec<usize> = (0..100).map(|i| 10 + i).collect();
        let chart = token_lengths("reviews", &lengths, 64);
        let svg = chart.svg().unwrap();
        assert!(svg.contains("max_len 64") && svg.contains("45 of 100 rows longer than max_len"), "{svg:.300}");
        assert_eq!(png_size(&chart.png().unwrap()), chart.size());
    }

    #[test]
    fn an_image_grid_embeds_each_tile_and_draws_its_pixels() {
        let tile = |v: u8, caption: &str| ImageTile { pixels: vec![v; 4 * 4], shape: [1, 4, 4], caption: caption.into() };
        let chart = image_grid(vec![("original".into(), vec![tile(0, "shirt"), tile(255, "shoe")]), ("augmented".into(), vec![tile(128, "shirt")])]).unwrap();
        let svg = chart.svg().unwrap();
        assert_eq!(svg.matches("<image").count(), 3);
        assert!(has_text(&svg, "original") && has_text(&svg, "augmented") && has_text(&svg, "shoe"));
        let png = chart.png().unwrap();
        assert_eq!(png_size(&png), chart.size());
        // The black tile's pixels are black in the PNG.
        let mut reader = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        let (w, _) = chart.size();
        let at = |x: usize, y: usize| buf[(y * w as usize + x) * 3];
        assert_eq!(at(112, 12), 0, "the first tile is black");
        assert_eq!(at(112 + 96, 12), 255, "the second tile is white");
        let bad = ImageTile { pixels: vec![0; 5], shape: [1, 2, 2], caption: String::new() };
        assert!(image_grid(vec![("x".into(), vec![bad])]).is_err());
    }
}

#[cfg(test)]
mod length_axis_tests {
    use super::LengthAxis;

    #[test]
    fn a_long_tail_is_clipped_at_the_99th_percentile_and_said() {
        let mut lengths: Vec<usize> = (0..1000).map(|i| 20 + i % 60).collect();
        lengths.extend([5000, 9000]);
        let axis = LengthAxis::of(&lengths, 128);
        assert_eq!(axis, LengthAxis { end: 128, clipped: Some((2, 9000)) });
        let even: Vec<usize> = (1..=300).collect();
        assert_eq!(LengthAxis::of(&even, 128), LengthAxis { end: 300, clipped: None }, "no tail, no clipping");
    }
}
