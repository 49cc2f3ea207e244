//! Errors of `inspect_path`: each names the file, what is wrong with it, and what to do.

use std::path::{Path, PathBuf};

/// Why a model could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path holds no model in a layout this tool reads.
    #[error("{}: {problem}; {hint}", path.display())]
    NotAModel {
        path: PathBuf,
        problem: String,
        hint: String,
    },
    /// A file is malformed, truncated, or uses something this tool does not know.
    #[error("{}: {problem}; {hint}", path.display())]
    Malformed {
        path: PathBuf,
        problem: String,
        hint: String,
    },
    /// The result could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl InspectError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        InspectError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn not_a_model(path: &Path, problem: impl Into<String>, hint: impl Into<String>) -> Self {
        InspectError::NotAModel {
            path: path.to_path_buf(),
            problem: problem.into(),
            hint: hint.into(),
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            InspectError::Io { path, .. }
            | InspectError::NotAModel { path, .. }
            | InspectError::Malformed { path, .. } => Some(path),
            InspectError::Json(_) => None,
        }
    }
}

/// A parser's complaint before it is tied to a file; the caller adds the path.
#[derive(Debug)]
pub(crate) enum Bad {
    Io(std::io::Error),
    Invalid { problem: String, hint: &'static str },
}

pub(crate) const HINT_REDOWNLOAD: &str = "the file is incomplete or damaged: download or convert it again";
pub(crate) const HINT_UPDATE: &str =
    "this tool does not know it yet: report it, with the model's name, to the Pyxis maintainers";

impl Bad {
    pub(crate) fn invalid(problem: impl Into<String>, hint: &'static str) -> Self {
        Bad::Invalid {
            problem: problem.into(),
            hint,
        }
    }

    pub(crate) fn corrupt(problem: impl Into<String>) -> Self {
        Bad::invalid(problem, HINT_REDOWNLOAD)
    }

    pub(crate) fn at(self, path: &Path) -> InspectError {
        match self {
            Bad::Io(source) => InspectError::io(path, source),
            Bad::Invalid { problem, hint } => InspectError::Malformed {
                path: path.to_path_buf(),
                problem,
                hint: hint.to_string(),
            },
        }
    }
}

impl From<std::io::Error> for Bad {
    fn from(e: std::io::Error) -> Self {
        Bad::Io(e)
    }
}
