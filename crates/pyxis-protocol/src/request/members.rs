//! A JSON object read as its members, each value kept as raw JSON: the body is checked to be JSON
//! once, the fields the gateway reads are looked at where they lie, and everything else is passed
//! on byte for byte.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the input when it has no escapes.
pub(super) struct Str<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An object's members in the order written, values as raw JSON.
pub(super) struct Object<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(Str(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Object<'a> {
    /// Drops all but the last of each repeated key, as `serde_json` reads a map: the gateway and the
    /// runtime then see the same value for every key.
    pub fn dedup(&mut self) {
        let n = self.0.len();
        if n <= 64 {
            // The usual case, a handful of keys: compare each with the ones after it.
            let mut later = 0u64;
            for i in 0..n {
                if self.0[i + 1..].iter().any(|(k, _)| *k == self.0[i].0) {
                    later |= 1 << i;
                }
            }
            if later != 0 {
                let mut i = 0;
                self.0.retain(|_| {
                    let keep = later & (1 << i) == 0;
                    i += 1;
                    keep
                });
            }
        } else {
            // Many keys (a body may be 32 MiB): a map of each key's last position, not n² comparisons.
            let keep: Vec<bool> = {
                let last: HashMap<&str, usize> = self.0.iter().enumerate().map(|(i, (k, _))| (k.as_ref(), i)).collect();
                self.0
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| last[k.as_ref()] == i)
                    .collect()
            };
            let mut i = 0;
            self.0.retain(|_| {
                let k = keep[i];
                i += 1;
                k
            });
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// A member kept after parsing: where its key and value lie in the body.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub key: Key,
    pub value: Range<usize>,
}

#[derive(Debug, Clone)]
pub(super) enum Key {
    /// The key's characters in the body (it had no escapes, so they are the key).
    InBody(Range<usize>),
    /// A key written with escapes, decoded.
    Decoded(Box<str>),
}

/// Where `part` (borrowed from `base`) lies in `base`.
pub(super) fn range_in(base: &[u8], part: &str) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    debug_assert!(start + part.len() <= base.len(), "part is not inside base");
    start..start + part.len()
}

impl Member {
    pub fn new(base: &[u8], key: Cow<'_, str>, value: &RawValue) -> Member {
        Member {
            key: Key::new(base, key),
            value: range_in(base, value.get()),
        }
    }

    pub fn key<'b>(&'b self, base: &'b [u8]) -> &'b [u8] {
        match &self.key {
            Key::InBody(r) => &base[r.clone()],
            Key::Decoded(k) => k.as_bytes(),
        }
    }

    /// Writes `"key":value` as JSON.
    pub fn write(&self, base: &[u8], out: &mut Vec<u8>) {
        write_key(out, &self.key, base);
        out.extend_from_slice(&base[self.value.clone()]);
    }
}

impl Key {
    /// `key` as read from `base`.
    fn new(base: &[u8], key: Cow<'_, str>) -> Key {
        match key {
            Cow::Borrowed(k) => Key::InBody(range_in(base, k)),
            Cow::Owned(k) => Key::Decoded(k.into_boxed_str()),
        }
    }
}

fn write_key(out: &mut Vec<u8>, key: &Key, base: &[u8]) {
    match key {
        Key::InBody(r) => {
            out.push(b'"');
            out.extend_from_slice(&base[r.clone()]);
            out.extend_from_slice(b"\":");
        }
        Key::Decoded(k) => {
            write_str(out, k);
            out.push(b':');
        }
    }
}

/// A string as JSON, escaped.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes the members of the object `raw` (the client's `stream_options`) except `include_usage`, each
/// followed by a comma. Nothing when `raw` is not an object.
pub(super) fn write_members_except(out: &mut Vec<u8>, raw: &[u8], except: &str) {
    let Ok(mut obj) = serde_json::from_slice::<Object<'_>>(raw) else {
        return;
    };
    obj.dedup();
    for (k, v) in obj.0 {
        if k == except {
            continue;
        }
        write_key(out, &Key::new(raw, k), raw);
        out.extend_from_slice(v.get().as_bytes());
        out.push(b',');
    }
}
