//! Contract tests against recorded fixtures (fixtures/<kind>/, written from each runtime's
//! documented formats): request building, whole and streamed reply translation (every split point),
//! error classification and load parsing, per runtime kind.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod load;
mod native;
mod passthrough;
mod surfaces;
