//! How script values look in a notebook (text/plain and text/html).

use rhai::Dynamic;

use super::handles::{DatasetHandle, LoaderHandle, ModelHandle, RunHandle, TokensHandle};
use crate::render::html_escape;

/// Whether a table cell holds a number (as `cell` writes them), which reads
/// best right-aligned.
fn is_number(c: &str) -> bool {
    let t = c.trim_end_matches(['%', 's']).replace(',', "");
    !t.is_empty() && t.parse::<f64>().is_ok()
}

/// Longest text shown in an HTML table cell; the whole text is its tooltip.
const CELL_CHARS: usize = 80;

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let numeric: Vec<bool> = (0..head.len()).map(|i| rows.iter().filter_map(|r| r.get(i)).filter(|c| !c.is_empty()).all(|c| is_number(c))).collect();
    let align = |i: usize| if numeric.get(i).copied().unwrap_or(false) { "right" } else { "left" };
    let th: String = head.iter().enumerate().map(|(i, h)| format!("<th style=\"text-align:{}\">{}</th>", align(i), html_escape(h))).collect();
    let td = |i: usize, c: &String| {
        // In a column of mixed values (a map's), each number still aligns right.
        let side = if is_number(c) { "right" } else { align(i) };
        if c.chars().count() > CELL_CHARS {
            format!("<td style=\"text-align:{side}\" title=\"{}\">{}</td>", html_escape(c), html_escape(&short(c, CELL_CHARS)))
        } else {
            format!("<td style=\"text-align:{side}\">{}</td>", html_escape(c))
        }
    };
    let body: String = rows.iter().map(|r| format!("<tr>{}</tr>", r.iter().enumerate().map(|(i, c)| td(i, c)).collect::<String>())).collect();
    format!("<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")
}

/// A model's summary as HTML: its parameters per module as a table, then
/// the BatchNorm count and the totals.
fn summary_html(s: &crate::model::ModelSummary) -> String {
    let rows: Vec<Vec<String>> = s.rows.iter().map(|r| vec![r.module.clone(), crate::numbers::group_digits(r.trainable), crate::numbers::group_digits(r.frozen)]).collect();
    let text = s.to_string();
    let title = text.lines().next().unwrap_or_default();
    let bn = s.batch_norm.map(|bn| format!("BatchNorm: {} layers, {} with frozen statistics (kept in evaluation mode while training)<br>", bn.layers, bn.frozen)).unwrap_or_default();
    format!(
        "<b>{}</b><br>{}{}trainable {} of {} parameters ({})",
        html_escape(title),
        table(&["module", "trainable", "frozen"], &rows),
        html_escape(&bn),
        crate::numbers::group_digits(s.trainable()),
        crate::numbers::group_digits(s.total()),
        crate::numbers::percent(s.trainable(), s.total())
    )
    .replace("&lt;br&gt;", "<br>")
}

/// What `model.summary()` returns: aligned text when printed, a table in a
/// notebook.
#[derive(Clone)]
pub(crate) struct SummaryHandle(pub(crate) std::rc::Rc<crate::model::ModelSummary>);

impl std::fmt::Display for SummaryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Rows of values under named columns, from `table(rows)`: aligned text
/// when printed, an HTML table in a notebook.
#[derive(Clone)]
pub(crate) struct TableHandle {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TableHandle {
    /// A table from an array of maps. The columns are `columns` when given,
    /// else every key in alphabetical order (Rhai's maps are sorted).
    pub(crate) fn from_maps(rows: rhai::Array, columns: Option<Vec<String>>) -> Result<Self, String> {
        let fixed = columns.is_some();
        let mut columns: Vec<String> = columns.unwrap_or_default();
        let mut maps = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let map = row.try_cast::<rhai::Map>().ok_or_else(|| format!("table: row {} is not a map; give an array of maps like #{{ method: \"full\", accuracy: 0.8 }}", i + 1))?;
            for k in map.keys() {
                if !fixed && !columns.iter().any(|c| c == k.as_str()) {
                    columns.push(k.to_string());
                }
            }
            maps.push(map);
        }
        let rows = maps.iter().map(|m| columns.iter().map(|c| m.get(c.as_str()).map(cell).unwrap_or_default()).collect()).collect();
        Ok(Self { columns, rows })
    }

    /// The table as HTML.
    pub(crate) fn html(&self) -> String {
        let head: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        table(&head, &self.rows)
    }
}

impl std::fmt::Display for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| self.rows.iter().map(|r| r[i].chars().count()).chain(std::iter::once(self.columns[i].chars().count())).max().unwrap_or(0))
            .collect();
        let numeric: Vec<bool> = (0..self.columns.len()).map(|i| self.rows.iter().map(|r| &r[i]).filter(|c| !c.is_empty()).all(|c| is_number(c))).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).zip(&numeric).map(|((c, w), n)| if *n { format!("{c:>w$}") } else { format!("{c:<w$}") }).collect();
            padded.join("  ").trim_end().to_string()
        };
        writeln!(f, "{}", line(&self.columns))?;
        writeln!(f, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "))?;
        let body: Vec<String> = self.rows.iter().map(|r| line(r)).collect();
        write!(f, "{}", body.join("\n"))
    }
}

/// One table cell: integers with digit groups, small floats in scientific
/// notation, others to 4 significant digits or so, without trailing zeros.
fn cell(v: &Dynamic) -> String {
    if let Ok(i) = v.as_int() {
        return crate::numbers::group_digits(i);
    }
    if let Ok(x) = v.as_float() {
        let a = x.abs();
        if a >= 1e5 {
            return crate::numbers::group_digits(x.round() as i64);
        }
        if a != 0.0 && a < 1e-3 {
            return format!("{x:e}");
        }
        let s = match a {
            a if a >= 100.0 => format!("{x:.1}"),
            a if a >= 1.0 => format!("{x:.3}"),
            _ => format!("{x:.4}"),
        };
        return if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    }
    if v.is_unit() {
        return "-".into();
    }
    v.to_string()
}

/// Predictions (what `predict` returns for texts) as a table: the text
/// (shortened), the prediction, and each class's probability, rounded.
/// `None` when `value` is not an array of them.
fn predictions_table(value: &Dynamic) -> Option<TableHandle> {
    let rows = value.clone().try_cast::<rhai::Array>()?;
    let maps: Vec<rhai::Map> = rows.into_iter().map(|r| r.try_cast::<rhai::Map>()).collect::<Option<_>>()?;
    let first = maps.first()?;
    let kind = ["label", "labels", "value", "tags"].into_iter().find(|k| first.contains_key(*k))?;
    if !maps.iter().all(|m| m.contains_key("text") && m.contains_key(kind)) {
        return None;
    }
    let short = |t: &str| if t.chars().count() > 60 { format!("{}…", t.chars().take(59).collect::<String>()) } else { t.to_string() };
    let spread = |m: &rhai::Map, key: &str| m.get(key).and_then(|v| v.clone().try_cast::<rhai::Map>()).unwrap_or_default();
    let field = if kind == "value" { "values" } else { "scores" };
    // Per-class columns, for classifiers and multi-label heads.
    let classes: Vec<String> = if kind == "tags" { Vec::new() } else { spread(first, field).keys().map(|k| k.to_string()).collect() };
    let mut columns = vec!["text".to_string()];
    if kind != "value" {
        columns.push(kind.to_string());
    }
    if kind == "label" {
        columns.push("score".into());
    }
    columns.extend(classes.iter().map(|c| if kind == "value" { c.clone() } else { format!("p({c})") }));
    let body = maps
        .iter()
        .map(|m| {
            let mut row = vec![short(&m["text"].to_string())];
            match kind {
                "label" => row.extend([m["label"].to_string(), cell(&m["score"])]),
                "labels" | "tags" => row.push(m[kind].clone().try_cast::<rhai::Array>().unwrap_or_default().iter().map(|x| x.to_string()).collect::<Vec<_>>().join(if kind == "tags" { " " } else { ", " })),
                _ => {}
            }
            let values = spread(m, field);
            row.extend(classes.iter().map(|c| values.get(c.as_str()).map(cell).unwrap_or_default()));
            row
        })
        .collect();
    Some(TableHandle { columns, rows: body })
}

/// A map of plain values (an evaluation's results, a config) as a table of
/// names and values; `None` for other values.
fn map_table(value: &Dynamic) -> Option<TableHandle> {
    let map = value.clone().try_cast::<rhai::Map>()?;
    if map.is_empty() {
        return None;
    }
    let plain = |v: &Dynamic| v.is_int() || v.is_float() || v.is_string() || v.is_bool() || v.is_unit();
    let shown = |v: &Dynamic| if plain(v) { cell(v) } else { short(&v.to_string(), CELL_CHARS) };
    let rows = map.iter().map(|(k, v)| vec![k.to_string(), shown(v)]).collect();
    Some(TableHandle { columns: vec!["name".into(), "value".into()], rows })
}

/// Text cut to `n` characters with an ellipsis.
fn short(t: &str, n: usize) -> String {
    if t.chars().count() > n { format!("{}…", t.chars().take(n - 1).collect::<String>()) } else { t.to_string() }
}

/// Plain text and, for the core's types, HTML for a value; `None` for unit.
pub fn render(value: &Dynamic) -> Option<(String, Option<String>)> {
    if value.is_unit() {
        return None;
    }
    if let Some(m) = value.clone().try_cast::<super::handles::ImageModelHandle>() {
        let model = m.0.borrow();
        let s = crate::model::Learner::summary(&*model);
        return Some((format!("{model}\n{s}"), Some(format!("<b>{}</b><br>{}", html_escape(&model.to_string()), summary_html(&s)))));
    }
    if let Some(m) = value.clone().try_cast::<ModelHandle>() {
        let s = m.0.borrow().summary();
        return Some((s.to_string(), Some(summary_html(&s))));
    }
    if let Some(s) = value.clone().try_cast::<SummaryHandle>() {
        return Some((s.to_string(), Some(summary_html(&s.0))));
    }
    if let Some(d) = value.clone().try_cast::<DatasetHandle>() {
        let pair = |i: usize| d.0.pairs.as_ref().map(|p| p[i].clone());
        let rows: Vec<Vec<String>> = d.0.texts.iter().take(5).enumerate().map(|(i, t)| std::iter::once(t.clone()).chain(pair(i)).chain(std::iter::once(d.0.targets.describe_row(i, &d.0.label_names))).collect()).collect();
        let columns: &[&str] = if d.0.pairs.is_some() { &["text", "pair", "label"] } else { &["text", "label"] };
        let html = format!("<b>{}</b><br>{}", html_escape(&d.0.to_string()), table(columns, &rows));
        return Some((d.0.to_string(), Some(html)));
    }
    if let Some(r) = value.clone().try_cast::<RunHandle>() {
        let metrics = r.0.epochs.iter().find_map(|e| e.val).map_or(vec!["accuracy"], |v| v.task.table_metrics());
        let rows: Vec<Vec<String>> = r
            .0
            .epochs
            .iter()
            .map(|e| {
                let mut row = vec![e.epoch.to_string(), format!("{:.4}", e.train_loss), e.val.map(|v| format!("{:.4}", v.loss)).unwrap_or_default()];
                row.extend(metrics.iter().map(|m| e.val.and_then(|v| v.metric(m)).map(|x| format!("{x:.4}")).unwrap_or_default()));
                row.push(format!("{:.0}s", e.elapsed));
                row
            })
            .collect();
        let names: Vec<String> = metrics.iter().map(|m| format!("val_{m}")).collect();
        let head: Vec<&str> = ["epoch", "train_loss", "val_loss"].into_iter().chain(names.iter().map(String::as_str)).chain(["time"]).collect();
        let html = format!("<b>{}</b><br>{}", html_escape(&r.0.to_string()), table(&head, &rows));
        return Some((r.0.to_string(), Some(html)));
    }
    if let Some(t) = value.clone().try_cast::<TableHandle>() {
        return Some((t.to_string(), Some(t.html())));
    }
    if let Some(t) = value.clone().try_cast::<TokensHandle>() {
        return Some((format!("TokenizedDataset {} ({} rows, max_len {})", t.0.name, t.0.len(), t.0.max_len), None));
    }
    if let Some(l) = value.clone().try_cast::<LoaderHandle>() {
        return Some((format!("Loader over {} ({} batches of {})", l.0.name(), l.0.len(), l.0.options.batch_size), None));
    }
    if let Some(t) = predictions_table(value) {
        return Some((t.to_string(), Some(t.html())));
    }
    if value.is_string() {
        // Text of several lines (a report, a summary) reads as text; one line
        // stays quoted, so that "1" and 1 look different.
        let text = value.to_string();
        return Some((if text.contains('\n') { text } else { format!("{value:?}") }, None));
    }
    if let Some(t) = map_table(value) {
        return Some((t.to_string(), Some(t.html())));
    }
    Some((value.to_string(), None))
}
