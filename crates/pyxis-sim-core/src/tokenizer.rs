//! A deterministic word-level tokenizer and the ChatML-like chat template.
//!
//! One token per word (a run of letters/digits) and one per other non-space character, so counts
//! are exact and easy to predict; the same text always gives the same ids, so prompts that share
//! text share a token prefix and hit the prefix cache. Words of the output vocabulary map to fixed
//! ids; any other word maps to a hashed id, stable across runs and machines.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::rng::hash_str;

/// Padding id (never produced).
pub const PAD: u32 = 0;
/// Beginning of sequence: every prompt starts with it, as Llama tokenizers add `<|begin_of_text|>`.
pub const BOS: u32 = 1;
/// End of sequence (reported, never streamed).
pub const EOS: u32 = 2;
/// `<|im_start|>`: opens a chat message.
pub const IM_START: u32 = 3;
/// `<|im_end|>`: closes a chat message.
pub const IM_END: u32 = 4;
/// First id of the output vocabulary.
pub const FIRST_WORD: u32 = 16;

const SPECIALS: &[(&str, u32)] = &[
    ("<|im_start|>", IM_START),
    ("<|im_end|>", IM_END),
    ("<|begin_of_text|>", BOS),
    ("<|endoftext|>", EOS),
];

/// The words generated text is made of (common English, so streams look like prose).
pub const WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are", "with", "as",
    "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "word", "but", "what", "some", "we", "can",
    "out", "other", "were", "all", "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which",
    "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would", "like", "so",
    "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more", "day", "could", "go", "come",
    "did", "number", "sound", "no", "most", "people", "my", "over", "know", "water", "than", "call", "first", "who",
    "may", "down", "side", "been", "now", "find", "any", "new", "work", "part", "take", "get", "place", "made", "live",
    "where", "after", "back", "little", "only", "round", "man", "year", "came", "show", "every", "good", "me", "give",
    "our", "under", "name", "very", "through", "just", "form", "sentence", "great", "think", "say", "help", "low",
    "line", "differ", "turn", "cause", "much", "mean", "before", "move", "right", "boy", "old", "too", "same", "tell",
    "does", "set", "three", "want", "air", "well", "also", "play", "small", "end", "put", "home", "read", "hand",
    "port", "large", "spell", "add", "even", "land", "here", "must", "big", "high", "such", "follow", "act", "why",
    "ask", "men", "change", "went", "light", "kind", "off", "need", "house", "picture", "try", "us", "again", "animal",
    "point", "mother", "world", "near", "build", "self", "earth", "father", "head", "stand", "own", "page", "should",
    "country", "found", "answer", "school", "grow", "study", "still", "learn", "plant", "cover", "food", "sun", "four",
    "between", "state", "keep", "eye", "never", "last", "let", "thought", "city", "tree", "cross", "farm", "hard",
    "start", "might", "story", "saw", "far", "sea", "draw", "left", "late", "run", "while", "press", "close", "night",
    "real", "life", "few", "north", "open", "seem", "together", "next", "white", "children", "begin", "got", "walk",
    "example", "ease", "paper", "group", "always", "music", "those", "both", "mark", "often", "letter", "until",
    "mile", "river", "car", "feet", "care", "second", "book", "carry", "took", "science", "eat", "room", "friend",
    "began", "idea", "fish", "mountain", "stop", "once", "base", "hear", "horse", "cut", "sure", "watch", "color",
    "face", "wood", "main", "enough", "plain", "girl", "usual", "young", "ready", "above", "ever", "red", "list",
    "though", "feel", "talk", "bird", "soon", "body", "dog", "family", "direct", "pose", "leave", "song", "measure",
    "door", "product", "black", "short", "numeral", "class", "wind", "question", "happen", "complete", "ship", "area",
    "half", "rock", "order", "fire", "south", "problem", "piece", "told", "knew", "pass", "since", "top", "whole",
    "king", "space", "heard", "best", "hour", "better", "true", "during", "hundred", "five", "remember", "step",
    "early", "hold", "west", "ground", "interest", "reach", "fast", "verb", "sing", "listen", "six", "table", "travel",
    "less", "morning", "ten", "simple", "several", "vowel", "toward", "war", "lay", "against", "pattern", "slow",
    "center", "love", "person", "money", "serve", "appear", "road", "map", "rain", "rule", "govern", "pull", "cold",
    "notice", "voice", "unit", "power", "town", "fine", "certain", "fly", "fall", "lead", "cry", "dark", "machine",
    "note", "wait", "plan", "figure", "star", "box", "noun", "field", "rest", "correct", "able", "pound", "done",
    "beauty", "drive", "stood", "contain", "front", "teach", "week", "final", "gave", "green", "oh", "quick",
    "develop", "ocean", "warm", "free", "minute", "strong", "special", "mind", "behind", "clear", "tail", "produce",
    "fact", "street", "inch", "multiply", "nothing", "course", "stay", "wheel", "full", "force", "blue", "object",
    "decide", "surface", "deep", "moon", "island", "foot", "system", "busy", "test", "record", "boat", "common",
    "gold", "possible", "plane", "stead", "dry", "wonder", "laugh", "thousand", "ago", "ran", "check", "game", "shape",
    "equate", "hot", "miss", "brought", "heat", "snow", "tire", "bring", "yes", "distant", "fill", "east", "paint",
    "language", "among",
];

/// Punctuation the generator inserts between words.
pub const PUNCT: &[&str] = &[",", "."];

fn word_ids() -> &'static HashMap<&'static str, u32> {
    static IDS: OnceLock<HashMap<&'static str, u32>> = OnceLock::new();
    IDS.get_or_init(|| {
        let mut m = HashMap::with_capacity(WORDS.len() + PUNCT.len());
        for (i, w) in WORDS.iter().chain(PUNCT.iter()).enumerate() {
            m.entry(*w).or_insert(FIRST_WORD + i as u32);
        }
        m
    })
}

/// Number of ids with a fixed spelling (specials, words, punctuation).
pub fn fixed_vocab_end() -> u32 {
    FIRST_WORD + (WORDS.len() + PUNCT.len()) as u32
}

/// Id of a generated-vocabulary piece (word or punctuation), if it is one.
pub fn word_id(piece: &str) -> Option<u32> {
    word_ids().get(piece).copied()
}

/// Text of a fixed id, if it has one (words, punctuation, specials).
pub fn piece(id: u32) -> Option<&'static str> {
    if id >= FIRST_WORD {
        let i = (id - FIRST_WORD) as usize;
        if i < WORDS.len() {
            return Some(WORDS[i]);
        }
        return PUNCT.get(i - WORDS.len()).copied();
    }
    SPECIALS.iter().find(|(_, v)| *v == id).map(|(s, _)| *s)
}

/// True for ids rendered without a leading space (punctuation).
pub fn is_punct(id: u32) -> bool {
    id >= FIRST_WORD + WORDS.len() as u32 && id < fixed_vocab_end()
}

/// Text → token ids for a model with `vocab` ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokenizer {
    vocab: u32,
}

impl Tokenizer {
    /// A tokenizer whose ids are below `vocab` (at least the fixed vocabulary plus room to hash).
    pub fn new(vocab: u32) -> Self {
        Tokenizer {
            vocab: vocab.max(fixed_vocab_end() + 64),
        }
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> u32 {
        self.vocab
    }

    fn hashed(&self, word: &str) -> u32 {
        let base = fixed_vocab_end();
        base + (hash_str(word) % u64::from(self.vocab - base)) as u32
    }

    fn push_word(&self, w: &str, out: &mut Vec<u32>) {
        out.push(word_id(w).unwrap_or_else(|| self.hashed(w)));
    }

    /// Appends the ids of `text` (no BOS) to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut rest = text;
        while !rest.is_empty() {
            if rest.starts_with("<|")
                && let Some((s, id)) = SPECIALS.iter().find(|(s, _)| rest.starts_with(s))
            {
                out.push(*id);
                rest = &rest[s.len()..];
                continue;
            }
            let mut chars = rest.char_indices();
            let Some((_, c)) = chars.next() else { break };
            if c.is_whitespace() {
                rest = &rest[c.len_utf8()..];
            } else if c.is_alphanumeric() || c == '_' {
                let end = rest
                    .char_indices()
                    .find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_'))
                    .map_or(rest.len(), |(i, _)| i);
                self.push_word(&rest[..end], out);
                rest = &rest[end..];
            } else {
                let n = c.len_utf8();
                self.push_word(&rest[..n], out);
                rest = &rest[n..];
            }
        }
    }

    /// Ids of `text`, no BOS.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut v = Vec::new();
        self.encode_into(text, &mut v);
        v
    }

    /// Ids of a prompt: BOS, then the text (what vLLM does for Llama models).
    pub fn encode_prompt(&self, text: &str) -> Vec<u32> {
        let mut v = vec![BOS];
        self.encode_into(text, &mut v);
        v
    }

    /// Number of tokens `text` encodes to (no BOS).
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }
}

/// Text of generated token `id` as it is streamed: words get a leading space except at the start
/// of the output; punctuation sticks to the previous word. Re-tokenising the concatenation gives
/// back exactly the same ids.
pub fn render_token(id: u32, first: bool) -> String {
    let p = piece(id).unwrap_or("?");
    if first || is_punct(id) {
        p.to_string()
    } else {
        format!(" {p}")
    }
}

/// Renders chat messages (role, content) with a ChatML-like template; with
/// `add_generation_prompt` the assistant turn is opened. Deterministic: the same conversation
/// prefix renders to the same text prefix.
pub fn render_chat<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>, add_generation_prompt: bool) -> String {
    let mut s = String::new();
    for (role, content) in messages {
        s.push_str("<|im_start|>");
        s.push_str(role);
        s.push('\n');
        s.push_str(content);
        s.push_str("<|im_end|>\n");
    }
    if add_generation_prompt {
        s.push_str("<|im_start|>assistant\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_ids_stable() {
        let t = Tokenizer::new(128_256);
        assert_eq!(t.encode("Hello, world!"), t.encode("Hello ,  world !"));
        assert_eq!(t.count("Hello, world!"), 4);
        assert_eq!(t.count("snake_case x2"), 2);
        assert_eq!(t.encode_prompt("the")[0], BOS);
        assert_eq!(t.encode("the"), vec![FIRST_WORD]);
        for id in t.encode("Zebra-crossings über 42 ünïcode ✓") {
            assert!(id < 128_256);
        }
    }

    #[test]
    fn generated_text_round_trips() {
        let t = Tokenizer::new(2048);
        let ids: Vec<u32> = [5u32, 9, WORDS.len() as u32, 40, WORDS.len() as u32 + 1]
            .iter()
            .map(|i| FIRST_WORD + i)
            .collect();
        let text: String = ids
            .iter()
            .enumerate()
            .map(|(i, id)| render_token(*id, i == 0))
            .collect();
        assert_eq!(t.encode(&text), ids);
    }

    #[test]
    fn chat_template_shares_prefixes() {
        let t = Tokenizer::new(128_256);
        let sys = ("system", "You are a careful assistant.");
        let a = t.encode_prompt(&render_chat([sys, ("user", "hi")], true));
        let b = t.encode_prompt(&render_chat([sys, ("user", "bye now")], true));
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        // BOS, <|im_start|>, system, 6 content tokens, <|im_end|>, <|im_start|>, user
        assert_eq!(common, 12);
        assert_eq!(a[1], IM_START);
    }
}
