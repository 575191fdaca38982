//! What every HTTP role of Keryu shares: bearer-token authentication, RFC 9457 problems, and
//! body and path extractors that answer with problems.

pub mod auth;
pub mod json;
pub mod ops;
pub mod problem;
pub mod protection;
