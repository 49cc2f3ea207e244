//! The request set: request `i` is built from `(seed, i)` alone, so runs repeat exactly and any
//! number of requests (a `--duration` run) can be made without building them up front.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::config::{BenchConfig, Endpoint, LenDist, Workload};
use crate::dataset::{DatasetPrompt, messages_text};
use crate::rng::Rng;
use crate::words::WORDS;

/// Salt for warm-up requests (different prompts, same shapes). Load point `p` uses salt `p`, so
/// the points of a sweep do not replay each other's prompts into the server's prefix cache.
pub(crate) const WARMUP: u64 = u64::MAX;

/// One request, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenchRequest {
    pub body: Value,
    /// Prompt length estimate (one token per word), used when the server reports no usage.
    pub est_input_tokens: u64,
    pub max_tokens: u32,
}

/// Builds requests on demand.
#[derive(Debug, Clone)]
pub(crate) struct RequestSet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    workload: Workload,
    model: String,
    endpoint: Endpoint,
    stream: bool,
    ignore_eos: bool,
    seed: u64,
    prefixes: Vec<String>,
}

/// `n` words drawn from `rng`, space-separated.
fn words(rng: &mut Rng, n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 7);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

/// Draws one length around `mean` (at least 1).
pub(crate) fn sample_len(rng: &mut Rng, mean: u32, dist: LenDist, spread: f64) -> u32 {
    let m = f64::from(mean);
    let v = match dist {
        LenDist::Fixed => m,
        LenDist::Uniform => m * (1.0 - spread) + rng.f64() * 2.0 * spread * m,
        LenDist::Normal => m + rng.normal() * spread * m,
        LenDist::Lognormal => (m.ln() - spread * spread / 2.0 + spread * rng.normal()).exp(),
    };
    v.round().clamp(1.0, f64::from(u32::MAX)) as u32
}

impl RequestSet {
    pub(crate) fn new(cfg: &BenchConfig) -> Self {
        let w = &cfg.workload;
        let prefixes = if w.shared_prefix_len == 0 {
            Vec::new()
        } else {
            (0..w.prefix_groups)
                .map(|g| {
                    words(
                        &mut Rng::derive(cfg.seed, &[u64::MAX, u64::from(g)]),
                        w.shared_prefix_len,
                    )
                })
                .collect()
        };
        RequestSet {
            inner: Arc::new(Inner {
                workload: w.clone(),
                model: cfg.model.clone(),
                endpoint: cfg.endpoint,
                stream: cfg.stream,
                ignore_eos: cfg.ignore_eos,
                seed: cfg.seed,
                prefixes,
            }),
        }
    }

    /// Request `index` of the stream `salt` (a load point's index, or [`WARMUP`]).
    pub(crate) fn get(&self, index: u64, salt: u64) -> BenchRequest {
        let s = &*self.inner;
        let w = &s.workload;
        let mut rng = Rng::derive(s.seed, &[salt, index]);
        let prefix = (!s.prefixes.is_empty()).then(|| s.prefixes[(index % s.prefixes.len() as u64) as usize].as_str());
        let (content, max_tokens) = if w.dataset.is_empty() {
            let input = sample_len(&mut rng, w.input_len, w.len_dist, w.len_spread);
            let output = sample_len(&mut rng, w.output_len, w.len_dist, w.len_spread);
            let text = if w.input_len == 0 {
                String::new()
            } else {
                words(&mut rng, input)
            };
            (Content::Text(join(prefix, &text)), output)
        } else {
            let e = &w.dataset[(index % w.dataset.len() as u64) as usize];
            let output = e
                .max_tokens
                .unwrap_or_else(|| sample_len(&mut rng, w.output_len, w.len_dist, w.len_spread));
            let c = match &e.prompt {
                DatasetPrompt::Text(t) => Content::Text(join(prefix, t)),
                DatasetPrompt::Messages(m) => {
                    let mut m = m.clone();
                    if let Some(p) = prefix {
                        m.insert(0, json!({"role": "system", "content": p}));
                    }
                    Content::Messages(m)
                }
            };
            (c, output)
        };
        let est_input_tokens = content.word_count();
        let mut body = match s.endpoint {
            Endpoint::Chat => json!({"model": s.model, "messages": content.into_messages()}),
            Endpoint::Completions => json!({"model": s.model, "prompt": content.into_text()}),
        };
        if let Some(m) = body.as_object_mut() {
            m.insert("max_tokens".into(), json!(max_tokens));
            m.insert("temperature".into(), json!(0.0));
            m.insert("stream".into(), json!(s.stream));
            if s.stream {
                m.insert("stream_options".into(), json!({"include_usage": true}));
            }
            if s.ignore_eos {
                m.insert("ignore_eos".into(), json!(true));
            }
        }
        BenchRequest {
            body,
            est_input_tokens,
            max_tokens,
        }
    }
}

fn join(prefix: Option<&str>, text: &str) -> String {
    match prefix {
        Some(p) if text.is_empty() => p.to_string(),
        Some(p) => format!("{p} {text}"),
        None => text.to_string(),
    }
}

enum Content {
    Text(String),
    Messages(Vec<Value>),
}

impl Content {
    fn word_count(&self) -> u64 {
        match self {
            Content::Text(t) => t.split_whitespace().count() as u64,
            Content::Messages(m) => messages_text(m).split_whitespace().count() as u64,
        }
    }

    fn into_messages(self) -> Vec<Value> {
        match self {
            Content::Text(t) => vec![json!({"role": "user", "content": t})],
            Content::Messages(m) => m,
        }
    }

    fn into_text(self) -> String {
        match self {
            Content::Text(t) => t,
            Content::Messages(m) => messages_text(&m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::parse;

    const MEASURED: u64 = 0;

    fn cfg() -> BenchConfig {
        let mut c = BenchConfig::new("http://h:1", "m");
        c.workload.input_len = 50;
        c.workload.output_len = 20;
        c
    }

    #[test]
    fn synthetic_requests_are_deterministic_and_sized() {
        let c = cfg();
        let a = RequestSet::new(&c).get(3, MEASURED);
        let b = RequestSet::new(&c).get(3, MEASURED);
        assert_eq!(a, b);
        assert_ne!(a.body, RequestSet::new(&c).get(4, MEASURED).body);
        assert_ne!(a.body, RequestSet::new(&c).get(3, WARMUP).body);
        assert_eq!(a.est_input_tokens, 50);
        assert_eq!(a.max_tokens, 20);
        assert_eq!(a.body["max_tokens"], 20);
        assert_eq!(a.body["stream_options"]["include_usage"], true);
        assert!(a.body.get("ignore_eos").is_none());
        let text = a.body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(text.split(' ').count(), 50);
    }

    #[test]
    fn shared_prefixes_group_requests() {
        let mut c = cfg();
        c.workload.shared_prefix_len = 10;
        c.workload.prefix_groups = 2;
        c.endpoint = Endpoint::Completions;
        c.stream = false;
        let set = RequestSet::new(&c);
        let p = |i| {
            set.get(i, MEASURED).body["prompt"]
                .as_str()
                .unwrap()
                .split(' ')
                .take(10)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(p(0), p(2));
        assert_eq!(p(1), p(3));
        assert_ne!(p(0), p(1));
        let r = set.get(0, MEASURED);
        assert_eq!(r.est_input_tokens, 60);
        assert!(r.body.get("stream_options").is_none());
    }

    #[test]
    fn dataset_lines_cycle_and_keep_their_max_tokens() {
        let mut c = cfg();
        c.ignore_eos = true;
        c.workload.dataset = parse(
            "{\"prompt\": \"one two\", \"max_tokens\": 5}\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
        )
        .unwrap();
        let set = RequestSet::new(&c);
        let r0 = set.get(0, MEASURED);
        assert_eq!(r0.max_tokens, 5);
        assert_eq!(r0.body["messages"][0]["content"], "one two");
        assert_eq!(r0.body["ignore_eos"], true);
        assert_eq!(set.get(1, MEASURED).max_tokens, 20);
        assert_eq!(set.get(2, MEASURED).body, r0.body);
    }

    #[test]
    fn length_distributions_center_on_the_mean() {
        let mut rng = Rng::new(9);
        for dist in [LenDist::Uniform, LenDist::Normal, LenDist::Lognormal] {
            let n = 5000;
            let xs: Vec<u32> = (0..n).map(|_| sample_len(&mut rng, 200, dist, 0.25)).collect();
            let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / f64::from(n);
            assert!((mean - 200.0).abs() < 5.0, "{dist:?} {mean}");
            assert!(xs.iter().any(|&x| x != 200), "{dist:?}");
            if dist == LenDist::Uniform {
                assert!(xs.iter().all(|&x| (150..=250).contains(&x)));
            }
        }
        assert_eq!(sample_len(&mut rng, 7, LenDist::Fixed, 0.9), 7);
    }
}
