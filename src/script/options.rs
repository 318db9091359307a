//! Checked option maps: an unknown key, a wrong type or a value out of range
//! is an error that names the key and the valid choices.

use rhai::{Dynamic, EvalAltResult, Map};

use crate::suggest::closest;

/// A script error with no position yet (Rhai fills in the call site).
pub fn script_error(msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), rhai::Position::NONE))
}

/// An option map passed to one API function.
pub struct Options {
    func: &'static str,
    map: Map,
}

type R<T> = Result<T, Box<EvalAltResult>>;

impl Options {
    /// Checks that every key of `map` is one of `func`'s option keys (from
    /// the API reference, which completion reads too).
    pub fn new(func: &'static str, map: Map) -> R<Self> {
        let valid = super::reference::options_of(func);
        for key in map.keys() {
            if !valid.contains(&key.as_str()) {
                let names: Vec<String> = valid.iter().map(|s| s.to_string()).collect();
                let near = closest(key, &names, 1);
                let hint = near.first().filter(|n| crate::suggest::edit_distance(key, n) <= 3).map(|n| format!(" Did you mean '{n}'?")).unwrap_or_default();
                return Err(script_error(format!("{func}: unknown option '{key}'.{hint} Valid options: {}", valid.join(", "))));
            }
        }
        Ok(Self { func, map })
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key)
    }

    fn type_error(&self, key: &str, want: &str, got: &Dynamic) -> Box<EvalAltResult> {
        script_error(format!("{}: option '{key}' must be {want}, got {} ({})", self.func, got.type_name(), got))
    }

    /// A number in `[min, max]`; integers are accepted.
    pub fn float(&self, key: &str, default: f64, min: f64, max: f64) -> R<f64> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let x = if let Ok(f) = v.as_float() { f } else if let Ok(i) = v.as_int() { i as f64 } else { return Err(self.type_error(key, "a number", v)) };
        if !(min..=max).contains(&x) || x.is_nan() {
            return Err(script_error(format!("{}: option '{key}' must be between {min} and {max}, got {x}", self.func)));
        }
        Ok(x)
    }

    /// An integer in `[min, max]`.
    pub fn int(&self, key: &str, default: i64, min: i64, max: i64) -> R<i64> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let x = v.as_int().map_err(|_| self.type_error(key, "an integer", v))?;
        if !(min..=max).contains(&x) {
            return Err(script_error(format!("{}: option '{key}' must be between {min} and {max}, got {x}", self.func)));
        }
        Ok(x)
    }

    /// An optional integer in `[min, max]`.
    pub fn opt_int(&self, key: &str, min: i64, max: i64) -> R<Option<i64>> {
        if self.get(key).is_none() {
            return Ok(None);
        }
        self.int(key, 0, min, max).map(Some)
    }

    /// `true` or `false`.
    pub fn bool(&self, key: &str, default: bool) -> R<bool> {
        let Some(v) = self.get(key) else { return Ok(default) };
        v.as_bool().map_err(|_| self.type_error(key, "true or false", v))
    }

    /// A string.
    pub fn string(&self, key: &str, default: &str) -> R<String> {
        let Some(v) = self.get(key) else { return Ok(default.to_string()) };
        v.clone().into_string().map_err(|_| self.type_error(key, "a string", v))
    }

    /// One of `choices`.
    pub fn choice(&self, key: &str, default: &str, choices: &[&str]) -> R<String> {
        let s = self.string(key, default)?;
        if !choices.contains(&s.as_str()) {
            return Err(script_error(format!("{}: option '{key}' must be one of {}, got '{s}'", self.func, choices.join(", "))));
        }
        Ok(s)
    }

    /// The `precision:` option (fp32, bf16 or fp16), `default` when not given.
    pub fn precision(&self, default: crate::runtime::precision::Precision) -> R<crate::runtime::precision::Precision> {
        use crate::runtime::precision::Precision;
        let name = self.choice("precision", default.name(), Precision::NAMES)?;
        Precision::parse(&name).map_err(|e| script_error(format!("{}: {e}", self.func)))
    }
}
