//! The HTTP API under `/api/v1`: runs ([`runs`]), signals to runs ([`signals`]) and the operator's endpoints
//! ([`admin`]). `server/openapi.json` describes every endpoint.

pub mod admin;
pub mod runs;
pub mod signals;
