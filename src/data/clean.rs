//! Text cleaning: each step can be turned on or off, and the report says
//! how many rows each one removed or changed.

use unicode_normalization::UnicodeNormalization;

/// Which cleaning steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanOptions {
    /// Remove HTML tags and decode entities (`&amp;`, `&#39;`).
    pub strip_html: bool,
    /// Normalize Unicode to NFKC (full-width letters, ligatures, composed accents).
    pub unicode: bool,
    /// Lower-case every text.
    pub lowercase: bool,
    /// Drop rows shorter than this many characters (after the steps above).
    pub min_chars: usize,
    /// Drop rows longer than this many characters, if set.
    pub max_chars: Option<usize>,
    /// Drop rows whose text repeats an earlier row's.
    pub dedupe: bool,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self { strip_html: false, unicode: false, lowercase: false, min_chars: 1, max_chars: None, dedupe: true }
    }
}

/// How many rows each cleaning step removed or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Rows before cleaning.
    pub rows_before: usize,
    /// Rows whose HTML was stripped.
    pub html: usize,
    /// Rows that Unicode normalization changed.
    pub unicode: usize,
    /// Rows whose text was empty after whitespace normalization.
    pub empty: usize,
    /// Rows shorter than `min_chars` (empty ones not counted again).
    pub too_short: usize,
    /// Rows longer than `max_chars`.
    pub too_long: usize,
    /// Rows that repeated an earlier row's text exactly.
    pub duplicates: usize,
    /// Rows left.
    pub rows_after: usize,
}

impl std::fmt::Display for CleanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "clean: {} rows -> {} (removed {} empty", self.rows_before, self.rows_after, self.empty)?;
        for (n, what) in [(self.too_short, "too short"), (self.too_long, "too long")] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        write!(f, ", {} duplicates", self.duplicates)?;
        for (n, what) in [(self.html, "HTML stripped"), (self.unicode, "Unicode normalized")] {
            if n > 0 {
                write!(f, "; {what} in {n}")?;
            }
        }
        write!(f, ")")
    }
}

/// What happened to one text.
pub(super) enum Cleaned {
    /// Keep it, as this text.
    Keep(String),
    /// Drop it: empty after normalization.
    Empty,
    /// Drop it: shorter than `min_chars`.
    TooShort,
    /// Drop it: longer than `max_chars`.
    TooLong,
}

/// Cleans one text: HTML, Unicode, control characters, whitespace, case
/// and length, counting changes in `report`.
pub(super) fn clean_text(text: &str, opts: &CleanOptions, report: &mut CleanReport) -> Cleaned {
    let mut text = text.to_string();
    if opts.strip_html {
        let stripped = strip_html(&text);
        if stripped != text {
            report.html += 1;
            text = stripped;
        }
    }
    if opts.unicode {
        let normalized: String = text.nfkc().collect();
        if normalized != text {
            report.unicode += 1;
            text = normalized;
        }
    }
    // Control characters become spaces, then runs of whitespace one space.
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if opts.lowercase {
        text = text.to_lowercase();
    }
    let chars = text.chars().count();
    if chars == 0 {
        Cleaned::Empty
    } else if chars < opts.min_chars {
        Cleaned::TooShort
    } else if opts.max_chars.is_some_and(|m| chars > m) {
        Cleaned::TooLong
    } else {
        Cleaned::Keep(text)
    }
}

/// Removes tags (and the contents of `script` and `style` elements) and
/// decodes character references. Written here rather than pulling in an
/// HTML parser: labelled text needs tags gone, not a DOM.
pub fn strip_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find('>') else {
            out.push_str(after);
            rest = "";
            break;
        };
        let tag = after[1..end].trim_start_matches('/').split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or("").to_ascii_lowercase();
        rest = &after[end + 1..];
        if (tag == "script" || tag == "style") && !after[1..].starts_with('/') {
            let close = format!("</{tag}");
            let lower = rest.to_ascii_lowercase();
            rest = match lower.find(&close) {
                Some(i) => &rest[i..],
                None => "",
            };
        }
        // A tag separates words (`a<br>b` is two words).
        out.push(' ');
    }
    out.push_str(rest);
    decode_entities(&out)
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ if name.starts_with("#x") || name.starts_with("#X") => u32::from_str_radix(&name[2..], 16).ok().and_then(char::from_u32),
                _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_stripped_and_entities_decoded() {
        assert_eq!(strip_html("<p>Tom &amp; Jerry&#39;s <b>best</b></p><script>x()</script>film &lt;3"), " Tom & Jerry's  best    film <3");
        assert_eq!(strip_html("a < b and c"), "a < b and c");
        assert_eq!(strip_html("5 &bogus; 6 &#x263A;"), "5 &bogus; 6 \u{263A}");
    }

    #[test]
    fn each_step_counts_what_it_did() {
        let opts = CleanOptions { strip_html: true, unicode: true, lowercase: true, min_chars: 3, max_chars: Some(10), dedupe: true };
        let mut report = CleanReport::default();
        let kept = |c: Cleaned| match c {
            Cleaned::Keep(t) => t,
            _ => panic!("dropped"),
        };
        assert_eq!(kept(clean_text("<i>ＦＵＬＬ</i>\u{7}  width", &opts, &mut report)), "full width");
        assert!(matches!(clean_text("ok", &opts, &mut report), Cleaned::TooShort));
        assert!(matches!(clean_text("far too long a text", &opts, &mut report), Cleaned::TooLong));
        assert!(matches!(clean_text(" <br> ", &opts, &mut report), Cleaned::Empty));
        assert_eq!((report.html, report.unicode), (2, 1));
    }
}
