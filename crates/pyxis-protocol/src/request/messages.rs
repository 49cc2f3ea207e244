//! Chat `messages`, checked and measured in one pass over their raw JSON, without building them.
//!
//! The checks and their errors are the ones a `serde_json::Value` of the messages would give: a
//! repeated key counts with its last value, a wrong type is named as `Value` names it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::members::Str;
use super::{CHAT_ROLES, invalid_json, invalid_value, missing, wrong_type_named};
use crate::error::OpenAiError;

/// Checks every message (an object with a known `role`, and `content` null, a string or an array of
/// parts) and returns the characters of their text. `raw` is the `messages` array.
pub(super) fn check(raw: &RawValue) -> Result<usize, OpenAiError> {
    let err = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(raw.get());
    match (Messages { err: &err }).deserialize(&mut de) {
        Ok(chars) => Ok(chars),
        Err(e) => Err(err.take().unwrap_or_else(|| invalid_json(&e))),
    }
}

/// A value seen where a role or content is expected, kept until the message's end (a later
/// repeat of the key replaces it).
enum Node<'a> {
    Null,
    Str(Cow<'a, str>),
    /// An array; for content, the characters of its parts' `text`.
    Parts(usize),
    /// Anything else, by the name `Value` gives its type.
    Other(&'static str),
}

struct Messages<'e> {
    err: &'e RefCell<Option<OpenAiError>>,
}

impl<'de> DeserializeSeed<'de> for Messages<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Messages<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut chars = 0;
        let mut i = 0;
        while let Some(c) = seq.next_element_seed(Message { i, err: self.err })? {
            chars += c;
            i += 1;
        }
        if i == 0 {
            *self.err.borrow_mut() = Some(invalid_value(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
                    .into(),
            ));
            return Err(de::Error::custom("empty messages"));
        }
        Ok(chars)
    }
}

struct Message<'e> {
    i: usize,
    err: &'e RefCell<Option<OpenAiError>>,
}

impl Message<'_> {
    fn fail<T, E: de::Error>(&self, e: OpenAiError) -> Result<T, E> {
        *self.err.borrow_mut() = Some(e);
        Err(E::custom("invalid message"))
    }
    fn not_an_object<T, E: de::Error>(&self, got: &'static str) -> Result<T, E> {
        self.fail(wrong_type_named(&format!("messages[{}]", self.i), "an object", got))
    }
}

/// Visitor methods that refuse a value of the named type (numbers, strings, booleans).
macro_rules! refuse {
    ($($method:ident($ty:ty) => $name:literal),* $(,)?) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            self.not_an_object($name)
        })*
    };
}

impl<'de> DeserializeSeed<'de> for Message<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Message<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }
    refuse!(
        visit_bool(bool) => "a boolean",
        visit_i64(i64) => "an integer",
        visit_u64(u64) => "an integer",
        visit_f64(f64) => "a number",
        visit_str(&str) => "a string",
    );
    fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
        self.not_an_object("null")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<usize, A::Error> {
        self.not_an_object("an array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let (mut role, mut content) = (None, None);
        while let Some(Str(key)) = map.next_key()? {
            match key.as_ref() {
                "role" => role = Some(map.next_value_seed(AnyNode)?),
                "content" => content = Some(map.next_value_seed(AnyNode)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let i = self.i;
        match role {
            None => return self.fail(missing(&format!("messages[{i}].role"))),
            Some(Node::Str(r)) if CHAT_ROLES.contains(&r.as_ref()) => {}
            Some(Node::Str(r)) => {
                let p = format!("messages[{i}].role");
                let supported = CHAT_ROLES
                    .iter()
                    .map(|r| format!("'{r}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return self.fail(invalid_value(
                    &p,
                    format!("Invalid value for '{p}': '{r}'. Supported values are: {supported}."),
                ));
            }
            Some(other) => {
                return self.fail(wrong_type_named(
                    &format!("messages[{i}].role"),
                    "a string",
                    other.type_name(),
                ));
            }
        }
        match content {
            None | Some(Node::Null) => Ok(0),
            Some(Node::Str(s)) => Ok(s.len()),
            Some(Node::Parts(chars)) => Ok(chars),
            Some(Node::Other(t)) => self.fail(wrong_type_named(
                &format!("messages[{i}].content"),
                "a string or an array of content parts",
                t,
            )),
        }
    }
}

impl Node<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Str(_) => "a string",
            Node::Parts(_) => "an array",
            Node::Other(t) => t,
        }
    }
}

/// Reads any value as a [`Node`]; arrays are walked as content parts, objects skipped.
struct AnyNode;

impl<'de> DeserializeSeed<'de> for AnyNode {
    type Value = Node<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyNode {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node<'de>, E> {
        Ok(Node::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node<'de>, E> {
        Ok(Node::Other("an integer"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node<'de>, E> {
        Ok(Node::Other("an integer"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node<'de>, E> {
        Ok(Node::Other("a number"))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut chars = 0;
        while let Some(c) = seq.next_element_seed(TextLen { part: true })? {
            chars += c;
        }
        Ok(Node::Parts(chars))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Node::Other("an object"))
    }
}

/// Characters of text in a value. As a content part (`part`): those of its `text` member when that
/// is a string. As that member: its length when it is a string. Anything else counts 0 and is skipped.
struct TextLen {
    part: bool,
}

impl<'de> DeserializeSeed<'de> for TextLen {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextLen {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, s: &str) -> Result<usize, E> {
        Ok(if self.part { 0 } else { s.len() })
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut text = 0;
        while let Some(Str(key)) = map.next_key()? {
            if self.part && key == "text" {
                text = map.next_value_seed(TextLen { part: false })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(text)
    }
}
