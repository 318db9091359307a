//! How script values look in a notebook (text/plain and text/html).

use rhai::Dynamic;

use super::data::{DatasetHandle, LoaderHandle, TokensHandle};
use super::model::ModelHandle;
use super::train::RunHandle;

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let th: String = head.iter().map(|h| format!("<th>{}</th>", html_escape(h))).collect();
    let body: String = rows
        .iter()
        .map(|r| format!("<tr>{}</tr>", r.iter().map(|c| format!("<td>{}</td>", html_escape(c))).collect::<String>()))
        .collect();
    format!("<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")
}

/// Plain text and, for the core's types, HTML for a value; `None` for unit.
pub fn render(value: &Dynamic) -> Option<(String, Option<String>)> {
    if value.is_unit() {
        return None;
    }
    if let Some(m) = value.clone().try_cast::<ModelHandle>() {
        let model = m.0.borrow();
        let s = model.summary();
        let rows: Vec<Vec<String>> = s.rows.iter().map(|r| vec![r.module.clone(), crate::model::group_digits(r.trainable), crate::model::group_digits(r.frozen)]).collect();
        let html = format!(
            "<b>Model {}</b> — labels: {}; pooling {}; {:?}<br>{}<br>trainable {} of {} parameters ({:.1}%)",
            html_escape(&model.name),
            html_escape(&model.labels.join(", ")),
            model.pooling.name(),
            model.device(),
            table(&["module", "trainable", "frozen"], &rows),
            crate::model::group_digits(s.trainable()),
            crate::model::group_digits(s.total()),
            100.0 * s.trainable() as f64 / s.total().max(1) as f64
        );
        return Some((s.to_string(), Some(html)));
    }
    if let Some(d) = value.clone().try_cast::<DatasetHandle>() {
        let rows: Vec<Vec<String>> = d.0.texts.iter().zip(&d.0.labels).take(5).map(|(t, &l)| vec![t.clone(), d.0.label_names[l as usize].clone()]).collect();
        let html = format!("<b>{}</b><br>{}", html_escape(&d.0.to_string()), table(&["text", "label"], &rows));
        return Some((d.0.to_string(), Some(html)));
    }
    if let Some(r) = value.clone().try_cast::<RunHandle>() {
        let rows: Vec<Vec<String>> = r
            .0
            .epochs
            .iter()
            .map(|e| {
                let (vl, va) = e.val.map(|v| (format!("{:.4}", v.loss), format!("{:.4}", v.accuracy))).unwrap_or_default();
                vec![e.epoch.to_string(), format!("{:.4}", e.train_loss), vl, va, format!("{:.0}s", e.elapsed)]
            })
            .collect();
        let html = format!("<b>{}</b><br>{}", html_escape(&r.0.to_string()), table(&["epoch", "train_loss", "val_loss", "val_accuracy", "time"], &rows));
        return Some((r.0.to_string(), Some(html)));
    }
    if let Some(t) = value.clone().try_cast::<TokensHandle>() {
        return Some((format!("TokenizedDataset {} ({} rows, max_len {})", t.0.name, t.0.len(), t.0.max_len), None));
    }
    if let Some(l) = value.clone().try_cast::<LoaderHandle>() {
        return Some((format!("Loader over {} ({} batches of {})", l.0.data.name, l.0.len(), l.0.options.batch_size), None));
    }
    if value.is_string() {
        return Some((format!("{value:?}"), None));
    }
    Some((value.to_string(), None))
}
