//! Text augmentation as EDA (Wei and Zou, 2019) defines it: synonym
//! replacement, random insertion of a synonym, random swap and random
//! deletion. Synonyms come from WordNet's data files, which the bootstrap
//! installs from Debian's `wordnet-base`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use rand::seq::IndexedRandom;
use rand::Rng;

/// Words EDA never replaces or inserts synonyms for (its stop-word list:
/// function words whose WordNet senses, such as "a" the vitamin, are not
/// what the text means).
const STOP_WORDS: &[&str] = &[
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its",
    "itself", "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have",
    "has", "had", "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about", "against",
    "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here",
    "there", "when", "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not", "only", "own", "same", "so", "than", "too", "very",
    "s", "t", "can", "will", "just", "don", "should", "now",
];

/// Synonyms of every word WordNet knows, across its senses.
#[derive(Default)]
pub struct Thesaurus {
    synonyms: HashMap<String, Vec<String>>,
}

impl std::fmt::Debug for Thesaurus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thesaurus({} words)", self.synonyms.len())
    }
}

impl Thesaurus {
    /// Reads WordNet's `data.noun`, `data.verb`, `data.adj` and `data.adv`
    /// in `dir`: each synset line lists its words, which are synonyms.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut synonyms: HashMap<String, Vec<String>> = HashMap::new();
        for pos in ["noun", "verb", "adj", "adv"] {
            let path = dir.join(format!("data.{pos}"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}; run scripts/bootstrap", path.display()))?;
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with("  ")) {
                // offset lex_filenum ss_type w_cnt (word lex_id){w_cnt} ...
                let fields: Vec<&str> = line.split(' ').collect();
                let count = fields.get(3).and_then(|c| usize::from_str_radix(c, 16).ok()).with_context(|| format!("{}:{}: not a WordNet synset line", path.display(), n + 1))?;
                let words: Vec<String> = (0..count)
                    .filter_map(|i| fields.get(4 + 2 * i))
                    // Adjective markers such as "(a)" follow the word.
                    .map(|w| w.split('(').next().unwrap_or(w).replace('_', " ").to_lowercase())
                    .collect();
                for w in &words {
                    let entry = synonyms.entry(w.clone()).or_default();
                    for s in words.iter().filter(|s| *s != w) {
                        if !entry.contains(s) {
                            entry.push(s.clone());
                        }
                    }
                }
            }
        }
        if synonyms.is_empty() {
            bail!("{} holds no WordNet synsets", dir.display());
        }
        Ok(Self { synonyms })
    }

    /// The WordNet in the bootstrap's cache, read once per process.
    pub fn cached(cache: &Path) -> Result<Arc<Self>> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Thesaurus>>>> = OnceLock::new();
        let dir = cache.join("datasets/wordnet");
        let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = loaded.get(&dir) {
            return Ok(t.clone());
        }
        if !dir.join("data.noun").exists() {
            bail!("WordNet is not in the cache {}; run scripts/bootstrap", cache.display());
        }
        let t = Arc::new(Self::load(&dir)?);
        loaded.insert(dir, t.clone());
        Ok(t)
    }

    /// The synonyms of `word` (lower-cased), none for stop words.
    pub fn synonyms(&self, word: &str) -> &[String] {
        let w = word.to_lowercase();
        if STOP_WORDS.contains(&w.as_str()) {
            return &[];
        }
        self.synonyms.get(&w).map_or(&[], Vec::as_slice)
    }

    /// Number of words with synonyms.
    pub fn len(&self) -> usize {
        self.synonyms.len()
    }

    /// Whether no word has synonyms.
    pub fn is_empty(&self) -> bool {
        self.synonyms.is_empty()
    }
}

/// How strongly each EDA operation changes a text: the share of its words
/// (EDA's alpha) that an operation touches; 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextAugment {
    /// Replace this share of the words with a synonym.
    pub synonyms: f64,
    /// Insert a synonym of a random word this share of times.
    pub insert: f64,
    /// Swap two random words this share of times.
    pub swap: f64,
    /// Delete each word with this probability.
    pub delete: f64,
    /// The probability that a text is augmented at all in an epoch.
    pub p: f64,
}

/// One EDA operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Synonym replacement.
    Synonyms,
    /// Random insertion.
    Insert,
    /// Random swap.
    Swap,
    /// Random deletion.
    Delete,
}

/// Applies one operation to `words`, with strength `alpha`.
pub fn apply(op: Operation, words: &mut Vec<String>, alpha: f64, thesaurus: &Thesaurus, rng: &mut impl Rng) {
    let n = ((alpha * words.len() as f64).round() as usize).max(1);
    match op {
        Operation::Synonyms => {
            let mut candidates: Vec<usize> = (0..words.len()).filter(|&i| !thesaurus.synonyms(&words[i]).is_empty()).collect();
            rand::seq::SliceRandom::shuffle(candidates.as_mut_slice(), rng);
            for i in candidates.into_iter().take(n) {
                if let Some(s) = thesaurus.synonyms(&words[i]).choose(rng) {
                    words[i] = s.clone();
                }
            }
        }
        Operation::Insert => {
            for _ in 0..n {
                let with: Vec<&String> = words.iter().filter(|w| !thesaurus.synonyms(w).is_empty()).collect();
                let Some(s) = with.choose(rng).and_then(|w| thesaurus.synonyms(w).choose(rng)).cloned() else { break };
                let at = rng.random_range(0..=words.len());
                words.insert(at, s);
            }
        }
        Operation::Swap => {
            for _ in 0..n {
                if words.len() < 2 {
                    break;
                }
                let (a, b) = (rng.random_range(0..words.len()), rng.random_range(0..words.len()));
                words.swap(a, b);
            }
        }
        Operation::Delete => {
            if words.len() > 1 {
                let kept: Vec<String> = words.iter().filter(|_| !rng.random_bool(alpha.clamp(0.0, 1.0))).cloned().collect();
                // EDA keeps one random word rather than return nothing.
                *words = if kept.is_empty() { vec![words.choose(rng).cloned().unwrap_or_default()] } else { kept };
            }
        }
    }
}

impl TextAugment {
    /// The enabled operations with their strengths.
    pub fn operations(&self) -> Vec<(Operation, f64)> {
        [(Operation::Synonyms, self.synonyms), (Operation::Insert, self.insert), (Operation::Swap, self.swap), (Operation::Delete, self.delete)].into_iter().filter(|(_, a)| *a > 0.0).collect()
    }

    /// With probability `p`, one enabled operation (chosen at random)
    /// applied to `text`; else the text as it is.
    pub fn augment(&self, text: &str, thesaurus: &Thesaurus, rng: &mut impl Rng) -> String {
        let ops = self.operations();
        if ops.is_empty() || !rng.random_bool(self.p.clamp(0.0, 1.0)) {
            return text.to_string();
        }
        let &(op, alpha) = ops.choose(rng).expect("not empty");
        let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        apply(op, &mut words, alpha, thesaurus, rng);
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tiny() -> Thesaurus {
        let mut synonyms = HashMap::new();
        synonyms.insert("film".to_string(), vec!["movie".to_string()]);
        synonyms.insert("good".to_string(), vec!["fine".to_string()]);
        Thesaurus { synonyms }
    }

    #[test]
    fn each_operation_does_what_it_says() {
        let t = tiny();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let words = || "a good film indeed".split(' ').map(str::to_string).collect::<Vec<_>>();
        let mut w = words();
        apply(Operation::Synonyms, &mut w, 0.5, &t, &mut rng);
        assert_eq!(w, ["a", "fine", "movie", "indeed"]);
        let mut w = words();
        apply(Operation::Insert, &mut w, 0.25, &t, &mut rng);
        assert_eq!(w.len(), 5);
        assert!(w.iter().any(|x| x == "movie" || x == "fine"));
        let mut w = words();
        apply(Operation::Swap, &mut w, 0.25, &t, &mut rng);
        let (mut sorted, mut orig) = (w.clone(), words());
        sorted.sort();
        orig.sort();
        assert_eq!(sorted, orig, "a swap keeps the words");
        let mut w = words();
        apply(Operation::Delete, &mut w, 1.0, &t, &mut rng);
        assert_eq!(w.len(), 1, "deleting everything keeps one word");
        // Stop words have no synonyms even when the thesaurus lists some.
        let mut t = tiny();
        t.synonyms.insert("the".into(), vec!["thee".into()]);
        assert!(t.synonyms("The").is_empty());
    }
}
