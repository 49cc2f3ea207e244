//! The operator's error type: what can fail in a reconcile (user mistakes are status conditions, not errors).

/// A reconcile failure; the controller retries it with back-off ([`crate::reconcile::error_policy`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0} has no namespace")]
    NoNamespace(String),
    #[error("encoding a patch: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A short label for logs and metrics, e.g. `kube` or `finalizer`.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace(_) => "no_namespace",
            Error::Json(_) => "json",
        }
    }
}
