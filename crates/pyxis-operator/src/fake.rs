//! An in-process fake of the Kubernetes API server for tests: objects in a map, every request recorded (method,
//! path, query, content type, body), get/list/watch, server-side apply (one manager: the applied fields replace
//! the stored ones, `status` survives), JSON patches (finalizers), create, delete, and injected failures.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

impl Call {
    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// A path split into its parts: `/api/v1` or `/apis/G/V`, namespace, resource, name, subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parts {
    prefix: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Parts> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segs.first() {
        Some(&"api") => (segs.get(..2)?.join("/"), segs.get(2..)?),
        Some(&"apis") => (segs.get(..3)?.join("/"), segs.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let s = |i: usize| rest.get(i).map(|x| x.to_string());
    Some(Parts {
        prefix: format!("/{prefix}"),
        namespace,
        resource: s(0)?,
        name: s(1),
        sub: s(2),
    })
}

/// The lowercase plural of a kind, as the API server (and kube's derive) forms it.
fn plural(kind: &str) -> String {
    let k = kind.to_ascii_lowercase();
    match k.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{k}s"),
    }
}

/// The path of an object with this apiVersion, kind, namespace and name.
pub fn path_of(api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    format!("{prefix}/namespaces/{namespace}/{}/{name}", plural(kind))
}

fn path_of_object(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    path_of(
        &s("/apiVersion"),
        &s("/kind"),
        &s("/metadata/namespace"),
        &s("/metadata/name"),
    )
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    failures: Vec<(String, String, u16)>,
    watchers: Vec<(Parts, mpsc::UnboundedSender<Bytes>)>,
    version: u64,
    api_groups: Vec<String>,
}

impl State {
    fn bump(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    /// Stores `obj` at `path`, filling in server-set metadata, and tells the watchers.
    fn store(&mut self, path: &str, mut obj: Value, created: bool) -> Value {
        let version = self.bump();
        let n = self.version;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(version));
            if created {
                meta.entry("uid").or_insert_with(|| json!(format!("uid-{n}")));
                meta.entry("creationTimestamp")
                    .or_insert_with(|| json!(format!("2026-01-01T00:{:02}:{:02}Z", n / 60 % 60, n % 60)));
                meta.entry("generation").or_insert(json!(1));
            }
        }
        self.objects.insert(path.to_string(), obj.clone());
        self.notify(path, if created { "ADDED" } else { "MODIFIED" }, &obj);
        obj
    }

    fn notify(&mut self, path: &str, ty: &str, obj: &Value) {
        let Some(p) = parse_path(path) else { return };
        let line = Bytes::from(format!("{}\n", json!({ "type": ty, "object": obj })));
        self.watchers.retain(|(w, tx)| {
            let matches = w.prefix == p.prefix
                && w.resource == p.resource
                && (w.namespace.is_none() || w.namespace == p.namespace);
            !matches || tx.send(line.clone()).is_ok()
        });
    }

    fn list(&self, p: &Parts) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                parse_path(k).is_some_and(|o| {
                    o.prefix == p.prefix
                        && o.resource == p.resource
                        && o.sub.is_none()
                        && (p.namespace.is_none() || o.namespace == p.namespace)
                })
            })
            .map(|(_, v)| v.clone())
            .collect()
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn reply(code: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("application/json"));
    r
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    reply(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": reason, "message": message, "code": code}),
    )
}

/// The fake API server; clone it freely, all clones share one state.
#[derive(Clone, Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
}

impl Fake {
    /// A fake and a client talking to it, with default namespace `default`.
    pub fn new() -> (Fake, Client) {
        let fake = Fake::default();
        let f = fake.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let f = f.clone();
            async move { Ok::<_, Infallible>(f.handle(req).await) }
        });
        (fake, Client::new(svc, "default"))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores an object as if created by someone else; returns its path.
    pub fn insert(&self, obj: Value) -> String {
        let path = path_of_object(&obj);
        let mut st = self.lock();
        let created = !st.objects.contains_key(&path);
        st.store(&path, obj, created);
        path
    }

    /// Deletes an object as someone else would.
    pub fn remove(&self, path: &str) {
        let mut st = self.lock();
        if let Some(obj) = st.objects.remove(path) {
            st.notify(path, "DELETED", &obj);
        }
    }

    /// Watches currently open.
    pub fn watching(&self) -> usize {
        self.lock().watchers.iter().filter(|(_, tx)| !tx.is_closed()).count()
    }

    pub fn object(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Makes the next `method` request whose path contains `path_part` fail with `code`.
    pub fn fail(&self, method: &str, path_part: &str, code: u16) {
        self.lock().failures.push((method.into(), path_part.into(), code));
    }

    /// API groups listed by `GET /apis`.
    pub fn serve_groups(&self, groups: &[&str]) {
        self.lock().api_groups = groups.iter().map(|g| g.to_string()).collect();
    }

    async fn handle(&self, req: Request<kube::client::Body>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let call = Call {
            method,
            path,
            query,
            content_type,
            body,
        };
        let mut st = self.lock();
        st.calls.push(call.clone());
        if let Some(i) = st
            .failures
            .iter()
            .position(|(m, p, _)| *m == call.method && call.path.contains(p.as_str()))
        {
            let (_, _, code) = st.failures.remove(i);
            return status(code, "InternalError", "injected failure");
        }
        if call.path == "/apis" {
            let groups: Vec<Value> = st
                .api_groups
                .iter()
                .map(|g| json!({"name": g, "versions": [{"groupVersion": format!("{g}/v1"), "version": "v1"}]}))
                .collect();
            return reply(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            );
        }
        let Some(parts) = parse_path(&call.path) else {
            return status(404, "NotFound", "unknown path");
        };
        match call.method.as_str() {
            "GET" if matches!(call.param("watch"), Some("true" | "1")) => {
                let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
                st.watchers.push((parts, tx));
                let stream = futures::stream::poll_fn(move |cx| {
                    rx.poll_recv(cx).map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
                });
                let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
                r.headers_mut()
                    .insert("content-type", http::HeaderValue::from_static("application/json"));
                r
            }
            "GET" if parts.name.is_some() => match st.objects.get(&call.path) {
                Some(o) => reply(200, o),
                None => status(404, "NotFound", &format!("{} not found", call.path)),
            },
            "GET" => {
                let items = st.list(&parts);
                let version = st.version.to_string();
                reply(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": version}, "items": items}),
                )
            }
            "PATCH" => self.patch(&mut st, &call, &parts),
            "POST" => {
                let Some(mut obj) = call.body.clone() else {
                    return status(400, "BadRequest", "no body");
                };
                let name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("unnamed")
                    .to_string();
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.entry("namespace")
                        .or_insert(json!(parts.namespace.clone().unwrap_or_default()));
                }
                let obj = st.store(&format!("{}/{name}", call.path), obj, true);
                reply(201, &obj)
            }
            "DELETE" => match st.objects.remove(&call.path) {
                Some(o) => {
                    st.notify(&call.path, "DELETED", &o);
                    reply(200, &o)
                }
                None => status(404, "NotFound", &format!("{} not found", call.path)),
            },
            _ => status(405, "MethodNotAllowed", "unsupported"),
        }
    }

    fn patch(&self, st: &mut State, call: &Call, parts: &Parts) -> Response<Body> {
        let object_path = match &parts.sub {
            Some(sub) => call.path.trim_end_matches(&format!("/{sub}")).to_string(),
            None => call.path.clone(),
        };
        let existing = st.objects.get(&object_path).cloned();
        let Some(body) = call.body.clone() else {
            return status(400, "BadRequest", "no body");
        };
        let ct = call.content_type.clone().unwrap_or_default();
        if ct.starts_with("application/json-patch+json") {
            let Some(mut obj) = existing else {
                return status(404, "NotFound", "no such object");
            };
            // The API server's JSON patch reads an absent list as null; json-patch needs the key to exist.
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.entry("finalizers").or_insert(Value::Null);
            }
            let Ok(patch) = serde_json::from_value::<json_patch::Patch>(body) else {
                return status(400, "BadRequest", "bad JSON patch");
            };
            if json_patch::patch(&mut obj, &patch).is_err() {
                return status(422, "Invalid", "JSON patch test failed");
            }
            let obj = st.store(&object_path, obj, false);
            return reply(200, &obj);
        }
        if !ct.starts_with("application/apply-patch+yaml") || call.param("fieldManager").is_none() {
            return status(415, "UnsupportedMediaType", "only server-side apply and JSON patch");
        }
        if parts.sub.as_deref() == Some("status") {
            let Some(mut obj) = existing else {
                return status(404, "NotFound", "no such object");
            };
            obj["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            let obj = st.store(&object_path, obj, false);
            return reply(200, &obj);
        }
        let created = existing.is_none();
        let mut obj =
            existing.unwrap_or_else(|| json!({"metadata": {"name": parts.name, "namespace": parts.namespace}}));
        for (k, v) in body.as_object().into_iter().flatten() {
            if k == "metadata" {
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    obj["metadata"][mk] = mv.clone();
                }
            } else if k != "status" {
                if k == "spec" && !created && obj.get("spec") != Some(v) {
                    let g = obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    obj["metadata"]["generation"] = json!(g + 1);
                }
                obj[k] = v.clone();
            }
        }
        let obj = st.store(&object_path, obj, created);
        reply(if created { 201 } else { 200 }, &obj)
    }
}
