//! `--set NAME=VALUE`: overriding a variable a script declares at its top
//! level (`let EPOCHS = 3;` or `const EPOCHS = 3;`), so that one script
//! serves many runs. The declaration's initializer is replaced in the
//! source, so line and column numbers stay those of the file.

/// One top-level declaration: its line index, name, and where its
/// initializer starts and ends in that line.
struct Declaration {
    line: usize,
    name: String,
    init: std::ops::Range<usize>,
}

fn declarations(source: &str) -> Vec<Declaration> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let Some(rest) = line.strip_prefix("let ").or_else(|| line.strip_prefix("const ")) else { continue };
        let offset = line.len() - rest.len();
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..name_len];
        let after = &rest[name_len..];
        let trimmed = after.trim_start();
        if name.is_empty() || !trimmed.starts_with('=') || trimmed.starts_with("==") {
            continue;
        }
        let start = offset + name_len + (after.len() - trimmed.len()) + 1;
        // The initializer ends at the line's last ';' before any comment.
        let code_end = line.find("//").unwrap_or(line.len());
        let Some(semi) = line[..code_end].rfind(';') else { continue };
        if semi > start {
            found.push(Declaration { line: i, name: name.to_string(), init: start..semi });
        }
    }
    found
}

/// `value` as Rhai source: numbers, `true`/`false`, arrays, maps and
/// quoted strings as written; anything else as a string.
fn literal(value: &str) -> String {
    let v = value.trim();
    let is_number = v.parse::<i64>().is_ok() || (v.parse::<f64>().is_ok() && !v.eq_ignore_ascii_case("nan") && !v.to_ascii_lowercase().contains("inf"));
    if is_number || v == "true" || v == "false" || v.starts_with('[') || v.starts_with("#{") || (v.starts_with('"') && v.ends_with('"') && v.len() >= 2) {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// Applies `NAME=VALUE` overrides to `source`. A name the script does not
/// declare at its top level (on one line) is an error that lists those it does.
pub fn apply(source: &str, overrides: &[(String, String)]) -> Result<String, String> {
    if overrides.is_empty() {
        return Ok(source.to_string());
    }
    let decls = declarations(source);
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    for (name, value) in overrides {
        let Some(d) = decls.iter().find(|d| &d.name == name) else {
            let mut names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
            names.dedup();
            return Err(format!(
                "--set {name}: the script declares no top-level variable '{name}' on one line; it declares: {}",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
        };
        let line = &lines[d.line];
        lines[d.line] = format!("{} {}{}", &line[..d.init.start], literal(value), &line[d.init.end..]);
    }
    let mut out = lines.join("\n");
    if source.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Parses `NAME=VALUE`.
pub fn parse(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("--set takes NAME=VALUE, got '{arg}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::{apply, literal};

    const SCRIPT: &str = "// sizes\nconst TRAIN_ROWS = 2000;   // rows\nlet lr = 5e-5;\nlet name = \"run\";\nfor i in 0..3 {\n    let inner = 1;\n}\n";

    #[test]
    fn overrides_replace_only_the_initializer_and_keep_positions() {
        let out = apply(SCRIPT, &[("TRAIN_ROWS".into(), "64".into()), ("name".into(), "small run".into()), ("lr".into(), "1e-3".into())]).unwrap();
        assert!(out.contains("const TRAIN_ROWS = 64;   // rows\n"), "{out}");
        assert!(out.contains("let lr = 1e-3;\n"), "{out}");
        assert!(out.contains("let name = \"small run\";\n"), "{out}");
        assert_eq!(out.lines().count(), SCRIPT.lines().count());
    }

    #[test]
    fn an_undeclared_or_nested_name_lists_the_declared_ones() {
        let err = apply(SCRIPT, &[("inner".into(), "2".into())]).unwrap_err();
        assert!(err.contains("no top-level variable 'inner'") && err.contains("TRAIN_ROWS, lr, name"), "{err}");
    }

    #[test]
    fn values_keep_their_types_and_other_text_becomes_a_string() {
        assert_eq!(literal("3"), "3");
        assert_eq!(literal("0.5"), "0.5");
        assert_eq!(literal("true"), "true");
        assert_eq!(literal("[1, 2]"), "[1, 2]");
        assert_eq!(literal("cuda"), "\"cuda\"");
        assert_eq!(literal("nan"), "\"nan\"");
    }
}
