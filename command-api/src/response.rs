//! Answers of accepted commands.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keryu_infra::event_store::Position;
use serde::Serialize;

/// The global position of the last event a command appended: a query may wait for the read
/// models to reach it (read-your-writes).
pub const KERYU_POSITION: HeaderName = HeaderName::from_static("keryu-position");

/// An accepted command's answer: a status, a JSON body, and where to look next.
pub struct Accepted<B> {
    /// 201 for creations, 202 for work that continues asynchronously, 200 otherwise.
    pub status: StatusCode,
    /// The resource's URL, for creations.
    pub location: Option<String>,
    /// What the command did.
    pub body: B,
    /// The position of its last event, `None` when it changed nothing.
    pub position: Option<Position>,
}

impl<B: Serialize> IntoResponse for Accepted<B> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        let headers = response.headers_mut();
        if let Some(location) = self.location.and_then(|l| HeaderValue::try_from(l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if let Some(position) = self.position {
            headers.insert(KERYU_POSITION, HeaderValue::from(position.0));
        }
        response
    }
}
