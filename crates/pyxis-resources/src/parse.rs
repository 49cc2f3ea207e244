//! Parses one document: YAML syntax, then the kind, then the typed resource, turning serde's errors into located
//! [`ConfigError`]s.

use std::fmt::{self, Display};

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

use crate::error::ConfigError;
use crate::locate::{Seg, locate, scalar_at};
use crate::meta::Resource;
use crate::split::Document;
use crate::{API_VERSION, KINDS, Model, ModelDeployment, PriorityTier, RoutingPolicy, Runtime, Tenant};

/// A typed resource of any kind.
#[derive(Debug, Clone)]
pub(crate) enum AnyResource {
    Tenant(Tenant),
    Model(Model),
    Runtime(Runtime),
    PriorityTier(PriorityTier),
    RoutingPolicy(RoutingPolicy),
    ModelDeployment(ModelDeployment),
}

/// What one document yielded. `kind` and `name` are known whenever the document is a mapping with a known `kind`
/// and a string `metadata.name`, even if the typed parse failed, so that other documents can still refer to it.
pub(crate) struct Parsed<'d> {
    pub cx: Cx<'d>,
    pub kind: Option<&'static str>,
    pub name: Option<String>,
    pub resource: Option<AnyResource>,
}

/// Where a document's errors are reported: its file, its text, and the `Kind "name": ` that prefixes them.
pub(crate) struct Cx<'d> {
    pub file: &'d str,
    pub doc: &'d Document,
    pub prefix: String,
}

/// A path rendered the way serde_yaml_ng renders it: `spec.runtimes[1]`.
struct PathDisplay<'p, 'a>(&'p [Seg<'a>]);

impl Display for PathDisplay<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl Cx<'_> {
    /// Line and column of `path` in this document (its first line when the path cannot be found).
    pub fn position(&self, path: &[Seg<'_>]) -> (usize, Option<usize>) {
        match locate(&self.doc.lines, path) {
            Some((line, col)) => (line, Some(col)),
            None => (self.doc.first_line, self.doc.first_column()),
        }
    }

    /// An error about the value at `path`, located at it.
    pub fn error(&self, path: &[Seg<'_>], msg: impl Display) -> ConfigError {
        let (line, col) = self.position(path);
        let message = if path.is_empty() {
            format!("{}{msg}", self.prefix)
        } else {
            format!("{}{}: {msg}", self.prefix, PathDisplay(path))
        };
        ConfigError::new(self.file, Some(line), col, message)
    }

    /// A serde_yaml_ng error, its location moved from its text to the error's fields.
    fn yaml_error(&self, e: &serde_yaml_ng::Error) -> ConfigError {
        let mut msg = e.to_string();
        let (line, col) = match e.location() {
            Some(loc) => {
                let mark = format!(" at line {} column {}", loc.line(), loc.column());
                if let Some(stripped) = msg.strip_suffix(&mark) {
                    msg = stripped.to_string();
                } else {
                    msg = msg.replacen(&mark, "", 1);
                }
                (loc.line(), Some(loc.column()))
            }
            None => (self.doc.first_line, self.doc.first_column()),
        };
        ConfigError::new(self.file, Some(line), col, format!("{}{msg}", self.prefix))
    }
}

/// `Kind "name": `, or as much of it as is known.
fn prefix(kind: Option<&str>, name: Option<&str>) -> String {
    match (kind, name) {
        (Some(k), Some(n)) => format!("{k} \"{n}\": "),
        (Some(k), None) => format!("{k}: "),
        (None, _) => String::new(),
    }
}

fn typed<S: DeserializeOwned>(cx: &Cx<'_>, errors: &mut Vec<ConfigError>) -> Option<Resource<S>> {
    serde_yaml_ng::from_str(&cx.doc.padded)
        .map_err(|e| errors.push(cx.yaml_error(&e)))
        .ok()
}

/// Parses one document, pushing every error found onto `errors`.
pub(crate) fn parse_document<'d>(file: &'d str, doc: &'d Document, errors: &mut Vec<ConfigError>) -> Parsed<'d> {
    let mut parsed = Parsed {
        cx: Cx {
            file,
            doc,
            prefix: String::new(),
        },
        kind: None,
        name: None,
        resource: None,
    };
    let cx = &mut parsed.cx;
    let value: Value = match serde_yaml_ng::from_str(&doc.padded) {
        Ok(v) => v,
        Err(e) => {
            // Not YAML: still name it, from its text, for the message and for other documents' references.
            let kind = scalar_at(&doc.lines, &[Seg::Key("kind")]).and_then(|k| KINDS.into_iter().find(|n| *n == k));
            let name = scalar_at(&doc.lines, &[Seg::Key("metadata"), Seg::Key("name")]);
            cx.prefix = prefix(kind, name.as_deref());
            errors.push(cx.yaml_error(&e));
            parsed.kind = kind;
            parsed.name = name;
            return parsed;
        }
    };
    let Value::Mapping(map) = value else {
        errors.push(cx.error(
            &[],
            "expected a resource: a mapping with apiVersion, kind, metadata and spec",
        ));
        return parsed;
    };
    let known = KINDS.join(", ");
    let kind = match map.get("kind") {
        None => {
            errors.push(cx.error(&[], format_args!("missing field `kind` (known kinds: {known})")));
            None
        }
        Some(Value::String(k)) => {
            let found = KINDS.iter().copied().find(|known| known == k);
            if found.is_none() {
                errors.push(cx.error(
                    &[Seg::Key("kind")],
                    format_args!("unknown kind \"{k}\" (known kinds: {known})"),
                ));
            }
            found
        }
        Some(_) => {
            errors.push(cx.error(&[Seg::Key("kind")], format_args!("expected a string, one of: {known}")));
            None
        }
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    cx.prefix = prefix(kind, name.as_deref());
    if let Some(Value::String(v)) = map.get("apiVersion")
        && v != API_VERSION
    {
        errors.push(cx.error(
            &[Seg::Key("apiVersion")],
            format_args!("expected \"{API_VERSION}\", found \"{v}\""),
        ));
    }
    parsed.resource = match kind {
        Some("Tenant") => typed(cx, errors).map(AnyResource::Tenant),
        Some("Model") => typed(cx, errors).map(AnyResource::Model),
        Some("Runtime") => typed(cx, errors).map(AnyResource::Runtime),
        Some("PriorityTier") => typed(cx, errors).map(AnyResource::PriorityTier),
        Some("RoutingPolicy") => typed(cx, errors).map(AnyResource::RoutingPolicy),
        Some("ModelDeployment") => typed(cx, errors).map(AnyResource::ModelDeployment),
        _ => None,
    };
    parsed.kind = kind;
    parsed.name = name;
    parsed
}
