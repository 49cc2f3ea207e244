//! Errors that stop a benchmark before it measures anything; each says what to do about it.

/// Why a run could not start. Failures of single requests during a run are data, not errors
/// (see [`crate::metrics::FailureKind`]).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag or config value is out of range.
    #[error("{0}")]
    Config(String),
    /// The dataset file could not be read or parsed.
    #[error("--dataset {path}: {message}")]
    Dataset { path: String, message: String },
    /// Nothing answers at the URL.
    #[error(
        "cannot reach {url}: {message}. Is the server running? Check --url (the base URL, e.g. http://127.0.0.1:8080)."
    )]
    Unreachable { url: String, message: String },
    /// The server refused the key.
    #[error(
        "{url} refused the API key{} (HTTP {status}: {message}). Check --api-key.",
        tenant_note(tenant)
    )]
    Unauthorized {
        url: String,
        tenant: Option<String>,
        status: u16,
        message: String,
    },
    /// The model is not served there (with the models that are, when `/v1/models` answered).
    #[error(
        "model `{model}` is not served at {url}{}. {}",
        tenant_note(tenant),
        models_hint(available)
    )]
    UnknownModel {
        url: String,
        model: String,
        tenant: Option<String>,
        available: Option<Vec<String>>,
    },
    /// The route itself is missing (the model exists).
    #[error(
        "{url} answered 404 although model `{model}` is listed: the server may not serve this route; try --endpoint {other}, and check that --url is the base URL (without /v1)."
    )]
    NoRoute {
        url: String,
        model: String,
        other: &'static str,
    },
    /// Any other refusal of the first request.
    #[error("the first request to {url}{} failed: {message}", tenant_note(tenant))]
    Rejected {
        url: String,
        tenant: Option<String>,
        message: String,
    },
}

fn tenant_note(tenant: &Option<String>) -> String {
    tenant.as_ref().map(|t| format!(" (tenant {t})")).unwrap_or_default()
}

fn models_hint(available: &Option<Vec<String>>) -> String {
    match available {
        Some(v) if v.is_empty() => "The server lists no models.".to_string(),
        Some(v) => format!("It serves: {}. Pass one of them with --model.", v.join(", ")),
        None => "Check --model (GET /v1/models did not answer, so the served models are unknown).".to_string(),
    }
}
