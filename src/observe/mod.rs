//! Operating the server: a request id on every request and every log line
//! it writes, and the Prometheus metrics served at `/metrics`.

pub mod metrics;
pub mod request_id;
