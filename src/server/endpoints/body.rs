//! Reading a request body: bounded in size and time, and read even when the answer will
//! be 401 (an unread body makes hyper close the connection, and connection-bound
//! authentication would be lost with it).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::{BodyExt, Limited};

use super::respond::{self, Body};
use super::State;

/// Reads the whole body within the limits; `Err` is the response to send instead.
pub async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(respond::too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(respond::too_large())
            } else {
                tracing::debug!(error = %e, "request body read failed");
                Err(respond::request_timeout())
            }
        }
        Err(_) => Err(respond::request_timeout()),
    }
}

/// [`read_body`] within the server's `max_body_bytes` and `request_timeout`.
pub(super) async fn read_request_body<B>(
    body: B,
    headers: &HeaderMap,
    state: &State,
) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let server = &state.config.server;
    read_body(body, headers, server.max_body_bytes, server.request_timeout).await
}
