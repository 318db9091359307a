//! Completion and inspection that know types: the type of the expression
//! before a `.` is inferred from the variables in scope and the return types
//! the engine records for every registered function, and only that type's
//! methods are offered, each with its signature.

use std::collections::BTreeMap;

use rhai::{Dynamic, Engine, Scope};

use super::reference;
use crate::kernel::{CompletionDetail, Completions};

/// A function or method the engine has, as its signature gives it.
#[derive(Debug, Clone)]
struct Function {
    name: String,
    /// The script-facing type of the first parameter (the receiver of a method call).
    first: Option<String>,
    /// The script-facing type it returns, when the engine records it.
    returns: Option<String>,
    signature: String,
}

/// The engine's functions, indexed once per session.
pub(crate) struct FunctionIndex {
    functions: Vec<Function>,
}

/// The script-facing name of a type as signatures and `type_of` spell it.
fn canonical(engine: &Engine, rust: &str) -> Option<String> {
    let t = rust.trim().trim_start_matches("&mut ").trim_start_matches('&').trim();
    let t = match t.strip_prefix("Result<").or_else(|| t.strip_prefix("core::result::Result<")) {
        // `Result<T, Box<EvalAltResult>>`: T, up to its top-level comma.
        Some(inner) => {
            let mut depth = 0;
            let end = inner.char_indices().find(|&(_, c)| {
                match c {
                    '<' => depth += 1,
                    '>' => depth -= 1,
                    ',' if depth == 0 => return true,
                    _ => {}
                }
                false
            });
            &inner[..end.map_or(inner.len(), |(i, _)| i)]
        }
        None => t,
    };
    let mapped = engine.map_type_name(t);
    let short = mapped.rsplit("::").next().unwrap_or(mapped).trim();
    let name = match short {
        "" | "()" | "Dynamic" | "?" | "_" => return None,
        "Array" | "Vec<Dynamic>" => "array",
        "ImmutableString" | "String" | "str" | "string" => "string",
        "Map" | "BTreeMap<SmartString,Dynamic>" => "map",
        "INT" | "i64" => "i64",
        "FLOAT" | "f64" => "f64",
        "bool" => "bool",
        "char" => "char",
        other if other.contains('<') => return None,
        other => other,
    };
    Some(name.to_string())
}

impl FunctionIndex {
    /// Reads every function the engine has (the standard packages included).
    pub(crate) fn new(engine: &Engine) -> Self {
        let functions = engine.gen_fn_signatures(true).into_iter().filter_map(|s| parse_signature(engine, &s)).collect();
        Self { functions }
    }

    /// The methods of type `ty`: name, kind ("method" or "property") and signature.
    fn methods_of(&self, ty: &str) -> BTreeMap<String, (&'static str, String)> {
        let mut out = BTreeMap::new();
        for f in self.functions.iter().filter(|f| f.first.as_deref() == Some(ty)) {
            if let Some(prop) = f.name.strip_prefix("get$") {
                out.entry(prop.to_string()).or_insert(("property", format!("{prop}: {}", f.returns.as_deref().unwrap_or("?"))));
            } else if f.name.starts_with(|c: char| c.is_alphabetic() || c == '_') && !f.name.contains('$') && !is_free_function(&f.name, ty) {
                out.entry(f.name.clone()).or_insert(("method", f.signature.clone()));
            }
        }
        out
    }

    /// What `name` called on a `ty` returns (a property getter when `property`),
    /// when every overload agrees.
    fn returns(&self, ty: &str, name: &str, property: bool) -> Option<String> {
        let wanted = if property { format!("get${name}") } else { name.to_string() };
        let mut types = self.functions.iter().filter(|f| f.name == wanted && f.first.as_deref() == Some(ty)).map(|f| f.returns.clone());
        let first = types.next()??;
        types.all(|t| t.as_deref() == Some(first.as_str())).then_some(first)
    }

    /// What the free function `name` returns, when every overload agrees.
    fn function_returns(&self, name: &str) -> Option<String> {
        let mut types = self.functions.iter().filter(|f| f.name == name).map(|f| f.returns.clone());
        let first = types.next()??;
        types.all(|t| t.as_deref() == Some(first.as_str())).then_some(first)
    }

    /// The signatures of `name` on a `ty` (any receiver when `ty` is unknown).
    fn signatures(&self, ty: Option<&str>, name: &str) -> Vec<String> {
        self.functions.iter().filter(|f| f.name == name && (ty.is_none() || f.first.as_deref() == ty)).map(|f| f.signature.clone()).collect()
    }
}

/// Whether `name` is a function called on its own (`print(x)`,
/// `load_model("minilm")`) rather than a method of `ty`, although Rhai would
/// accept `x.print()`.
fn is_free_function(name: &str, ty: &str) -> bool {
    const ENGINE_FUNCTIONS: [&str; 6] = ["print", "debug", "type_of", "get_fn_metadata_list", "is_def_var", "is_def_fn"];
    let api_free = reference::API.iter().any(|e| e.name == name && e.receiver.is_none());
    let api_method = reference::API.iter().any(|e| e.name == name && e.receiver.is_some_and(|r| r.eq_ignore_ascii_case(ty)));
    ENGINE_FUNCTIONS.contains(&name) || (api_free && !api_method)
}

/// `name(a: T, b: U) -> R` as a [`Function`].
fn parse_signature(engine: &Engine, s: &str) -> Option<Function> {
    let open = s.find('(')?;
    let name = s[..open].trim().to_string();
    let mut depth = 0;
    let close = s[open..].char_indices().find(|&(_, c)| {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            _ => {}
        }
        depth == 0
    })? .0 + open;
    let params = &s[open + 1..close];
    let first_param = params.split(',').next().filter(|p| !p.trim().is_empty());
    let first = first_param.and_then(|p| p.split_once(':')).and_then(|(_, t)| canonical(engine, t));
    let returns = s[close + 1..].trim().strip_prefix("->").and_then(|r| canonical(engine, r));
    let shown_params: Vec<&str> = params.split(',').map(|p| p.split(':').next().unwrap_or("").trim()).filter(|p| !p.is_empty()).collect();
    let signature = match &returns {
        Some(r) => format!("{name}({}) -> {r}", shown_params.join(", ")),
        None => format!("{name}({})", shown_params.join(", ")),
    };
    Some(Function { name, first, returns, signature })
}

/// One step of a chain like `data.train.take(3)`.
#[derive(Debug, PartialEq)]
enum Segment {
    /// A name: the variable at the start, a property after a dot.
    Name(String),
    /// A call `name(...)`.
    Call(String),
    /// An index `[...]`.
    Index,
    /// A literal whose type is known: `"text"`, `[1, 2]`, `#{ a: 1 }`.
    Literal(&'static str),
}

/// The chain of segments that ends at char `end` (exclusive), outermost first;
/// `None` when the text there is not a chain this can follow.
fn chain_before(chars: &[char], end: usize) -> Option<Vec<Segment>> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut segments = Vec::new();
    let mut i = end;
    loop {
        let c = *chars.get(i.checked_sub(1)?)?;
        let segment = match c {
            ')' | ']' | '}' => {
                let (open, close) = match c {
                    ')' => ('(', ')'),
                    ']' => ('[', ']'),
                    _ => ('{', '}'),
                };
                let mut depth = 0;
                let mut j = i;
                loop {
                    j = j.checked_sub(1)?;
                    if chars[j] == close {
                        depth += 1;
                    } else if chars[j] == open {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
                let name_start = (0..j).rev().take_while(|&k| is_ident(chars[k])).last().unwrap_or(j);
                let name: String = chars[name_start..j].iter().collect();
                i = name_start;
                match (c, name.is_empty()) {
                    (')', false) => Segment::Call(name),
                    (')', true) => return None,
                    (']', true) if j == 0 || !matches!(chars[j - 1], '.' | ']' | ')') => Segment::Literal("array"),
                    (']', _) if !name.is_empty() => {
                        // `name[...]`: an index into the variable or property `name`.
                        segments.push(Segment::Index);
                        Segment::Name(name)
                    }
                    (']', _) => {
                        i = j;
                        Segment::Index
                    }
                    ('}', true) if j > 0 && chars[j - 1] == '#' => {
                        i = j - 1;
                        Segment::Literal("map")
                    }
                    _ => return None,
                }
            }
            '"' => {
                let mut j = i - 1;
                loop {
                    j = j.checked_sub(1)?;
                    if chars[j] == '"' && (j == 0 || chars[j - 1] != '\\') {
                        break;
                    }
                }
                i = j;
                Segment::Literal("string")
            }
            c if is_ident(c) => {
                let start = (0..i).rev().take_while(|&k| is_ident(chars[k])).last().unwrap_or(i);
                let name: String = chars[start..i].iter().collect();
                if name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
                i = start;
                Segment::Name(name)
            }
            _ => return None,
        };
        // An index applies to what stands right before it; anything else
        // continues the chain only after a dot.
        let indexed = segment == Segment::Index;
        segments.push(segment);
        if i > 0 && chars[i - 1] == '.' {
            i -= 1;
        } else if !(indexed && i > 0) {
            break;
        }
    }
    segments.reverse();
    Some(segments)
}

/// The type of a chain: from the value while it is known (variables and the
/// fields of maps), then from the functions' return types.
fn type_of_chain(index: &FunctionIndex, engine: &Engine, scope: &Scope, segments: &[Segment]) -> Option<String> {
    let type_name = |v: &Dynamic| canonical(engine, v.type_name());
    let mut value: Option<Dynamic> = None;
    let mut ty: Option<String> = None;
    for (n, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Literal(t) => ty = Some(t.to_string()),
            Segment::Name(name) if n == 0 => {
                value = scope.get_value::<Dynamic>(name);
                ty = Some(type_name(value.as_ref()?)?);
            }
            Segment::Call(name) if n == 0 => {
                value = None;
                ty = Some(index.function_returns(name)?);
            }
            Segment::Name(name) => {
                let field = value.as_ref().and_then(|v| v.read_lock::<rhai::Map>().and_then(|m| m.get(name.as_str()).cloned()));
                match field {
                    Some(f) => {
                        ty = Some(type_name(&f)?);
                        value = Some(f);
                    }
                    None => {
                        ty = Some(index.returns(ty.as_deref()?, name, true)?);
                        value = None;
                    }
                }
            }
            Segment::Call(name) => {
                ty = Some(index.returns(ty.as_deref()?, name, false)?);
                value = None;
            }
            Segment::Index => {
                let element = value.as_ref().and_then(|v| v.read_lock::<rhai::Array>().and_then(|a| a.first().cloned()));
                ty = Some(type_name(element.as_ref()?)?);
                value = element;
            }
        }
    }
    ty
}

const KEYWORDS: [&str; 14] = ["let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue", "return", "true", "false"];

/// Completions at char offset `cursor` of `code`.
pub(crate) fn complete(index: &FunctionIndex, engine: &Engine, scope: &Scope, code: &str, cursor: usize) -> Completions {
    let chars: Vec<char> = code.chars().collect();
    let cursor = cursor.min(chars.len());
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let start = (0..cursor).rev().take_while(|&i| is_ident(chars[i])).last().unwrap_or(cursor);
    let prefix: String = chars[start..cursor].iter().collect();
    let mut found: BTreeMap<String, CompletionDetail> = BTreeMap::new();
    let detail = |kind: &str, signature: String| CompletionDetail { kind: kind.to_string(), signature };
    if let Some(function) = option_map_call(&chars[..start]) {
        for k in reference::options_of(&function) {
            found.insert(k.to_string(), detail("param", format!("{function} option")));
        }
    } else if start > 0 && chars[start - 1] == '.' {
        let chain = chain_before(&chars, start - 1);
        match chain.as_ref().and_then(|c| type_of_chain(index, engine, scope, c)) {
            Some(ty) => {
                // A map variable's keys are properties too.
                if let Some([Segment::Name(var)]) = chain.as_deref() {
                    if let Some(m) = scope.get_value::<Dynamic>(var).and_then(|v| v.try_cast::<rhai::Map>()) {
                        for (k, v) in m.iter() {
                            found.insert(k.to_string(), detail("property", format!("{k}: {}", canonical(engine, v.type_name()).unwrap_or_default())));
                        }
                    }
                }
                for (name, (kind, signature)) in index.methods_of(&ty) {
                    let doc = reference::API.iter().find(|e| e.name == name && e.receiver == Some(ty.as_str())).map(|e| format!("{}: {}", e.signature, reference::first_sentence(e.doc)));
                    found.entry(name).or_insert(detail(kind, doc.unwrap_or(signature)));
                }
            }
            // A type this cannot infer: the API's methods of every type.
            None => {
                for e in reference::API.iter().filter(|e| e.receiver.is_some()) {
                    found.entry(e.name.to_string()).or_insert(detail("method", format!("{}: {}", e.signature, reference::first_sentence(e.doc))));
                }
            }
        }
    } else {
        for e in reference::API.iter().filter(|e| e.receiver.is_none()) {
            found.entry(e.name.to_string()).or_insert(detail("function", format!("{}: {}", e.signature, reference::first_sentence(e.doc))));
        }
        for (name, _, value) in scope.iter_raw() {
            found.insert(name.to_string(), detail("instance", canonical(engine, value.type_name()).unwrap_or_default()));
        }
        for name in declared_names(code) {
            found.entry(name).or_insert(detail("instance", String::new()));
        }
        for k in KEYWORDS {
            found.entry(k.to_string()).or_insert(detail("keyword", String::new()));
        }
    }
    found.retain(|m, _| m.starts_with(&prefix));
    let (matches, details) = found.into_iter().unzip();
    Completions { matches, cursor_start: start, cursor_end: cursor, details }
}

/// Help for the name at `cursor`, a method resolved by its receiver's type;
/// with no name there, for the function whose call the cursor is in.
pub(crate) fn inspect(index: &FunctionIndex, engine: &Engine, scope: &Scope, code: &str, cursor: usize) -> Option<String> {
    let chars: Vec<char> = code.chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let cursor = cursor.min(chars.len());
    let start = (0..cursor).rev().take_while(|&i| is_ident(chars[i])).last().unwrap_or(cursor);
    let end = (cursor..chars.len()).take_while(|&i| is_ident(chars[i])).last().map(|i| i + 1).unwrap_or(cursor);
    let (name_start, name_end) = if start < end { (start, end) } else { enclosing_call(&chars, cursor)? };
    let name: String = chars[name_start..name_end].iter().collect();
    if name_start > 0 && chars[name_start - 1] == '.' {
        let ty = chain_before(&chars, name_start - 1).and_then(|c| type_of_chain(index, engine, scope, &c));
        if let Some(ty) = &ty {
            if let Some(e) = reference::API.iter().find(|e| e.name == name && e.receiver == Some(ty.as_str())) {
                return Some(format!("{}\n\n{}\n\nExample:\n{}", e.signature, e.doc, e.example.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")));
            }
            let signatures = index.signatures(Some(ty), &name);
            if !signatures.is_empty() {
                return Some(format!("{ty}.{}", signatures.join(&format!("\n{ty}."))));
            }
        }
    }
    if let Some(help) = reference::help(&name) {
        return Some(help);
    }
    if let Some(v) = scope.get_value::<Dynamic>(&name) {
        return Some(format!("{name}: {}", canonical(engine, v.type_name()).unwrap_or_else(|| v.type_name().to_string())));
    }
    let signatures = index.signatures(None, &name);
    (!signatures.is_empty()).then(|| signatures.join("\n"))
}

/// The name of the call whose parentheses hold `cursor`: `fit` for
/// `fit(model, |`.
fn enclosing_call(chars: &[char], cursor: usize) -> Option<(usize, usize)> {
    let mut depth = 0i32;
    for i in (0..cursor).rev() {
        match chars[i] {
            ')' | ']' | '}' => depth += 1,
            '[' | '{' if depth > 0 => depth -= 1,
            '(' if depth > 0 => depth -= 1,
            '(' => {
                let start = (0..i).rev().take_while(|&j| chars[j].is_alphanumeric() || chars[j] == '_').last()?;
                return Some((start, i));
            }
            _ => {}
        }
    }
    None
}

/// When the text before the cursor ends inside an option map `#{ ... }`
/// that is an argument of a call, at a key position, the called function.
fn option_map_call(before: &[char]) -> Option<String> {
    // The innermost unclosed `#{`, skipping closed braces and brackets.
    let mut depth = 0i32;
    let mut open = None;
    for i in (0..before.len()).rev() {
        match before[i] {
            '}' | ']' | ')' => depth += 1,
            '{' | '[' | '(' if depth > 0 => depth -= 1,
            '{' if i > 0 && before[i - 1] == '#' => {
                open = Some(i - 1);
                break;
            }
            '{' | '[' | '(' => return None,
            _ => {}
        }
    }
    let open = open?;
    // At a key: only whitespace or a comma since the last separator.
    let inside: String = before[open + 2..].iter().collect();
    let tail = inside.rsplit(',').next().unwrap_or("");
    if tail.contains(':') {
        return None;
    }
    let (start, end) = enclosing_call(before, open)?;
    Some(before[start..end].iter().collect())
}

/// Names declared with `let`/`const` in code not yet run.
fn declared_names(code: &str) -> Vec<String> {
    let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    words.windows(2).filter(|w| w[0] == "let" || w[0] == "const").map(|w| w[1].to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn chains_are_read_back_from_the_dot() {
        let c = chars("let x = data.train.take(3)");
        assert_eq!(chain_before(&c, c.len()), Some(vec![Segment::Name("data".into()), Segment::Name("train".into()), Segment::Call("take".into())]));
        let c = chars(r#"print("a \"b\"")"#);
        assert_eq!(chain_before(&c, c.len() - 1), Some(vec![Segment::Literal("string")]));
        let c = chars("[1, 2][0]");
        assert_eq!(chain_before(&c, c.len()), Some(vec![Segment::Literal("array"), Segment::Index]));
        let c = chars("#{ a: 1 }");
        assert_eq!(chain_before(&c, c.len()), Some(vec![Segment::Literal("map")]));
        let c = chars("3");
        assert_eq!(chain_before(&c, c.len()), None);
    }

    #[test]
    fn the_call_around_the_cursor_is_found() {
        let c = chars("fit(model, load(x), ");
        assert_eq!(enclosing_call(&c, c.len()), Some((0, 3)));
        let c = chars("fit(model, #{ epochs: 3, ");
        assert_eq!(option_map_call(&c), Some("fit".into()));
    }
}
