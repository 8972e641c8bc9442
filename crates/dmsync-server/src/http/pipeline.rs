//! The request pipeline: what every Graph, `$batch`, sign-in, admin and operational request
//! passes between the router's match and the route, as one layer. In order, outermost first:
//!
//! 1. the journal ([`control::journal::Recording`]), only when it is on and only for requests
//!    the control plane applies to, so that it sees the final status and the rendered error;
//! 2. the request context ([`context::begin`] and `finish`): ids, URLs, the head's ceilings,
//!    Graph's error bodies, `Date`, metrics;
//! 3. the `Host` check ([`host::require_host`]), before anything reads the host;
//! 4. the control plane ([`control::admit`]): throttling, then faults, which may answer in the
//!    route's place.
//!
//! Requests the control plane does not apply to ([`control::applies_to`]: the admin API, the
//! operational endpoints, the web console's own calls) skip steps 1 and 4. One layer with one
//! future, rather than a middleware per step, because each step's own boxed future and state
//! were a measurable share of a small request's cost.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::control::{self, Admission, RequestIdentity};
use crate::http::{context, host};
use crate::state::AppState;

/// The pipeline as a layer for `Router::layer`.
#[derive(Clone)]
pub struct PipelineLayer {
    state: AppState,
    journal: bool,
}

impl PipelineLayer {
    /// The pipeline without the journal, for the requests inside a `$batch` (the journal keeps
    /// the `$batch` as its client sent it).
    pub fn new(state: &AppState) -> PipelineLayer {
        PipelineLayer { state: state.clone(), journal: false }
    }

    /// The pipeline with the journal when it is on, for the main router.
    pub fn journalled(state: &AppState) -> PipelineLayer {
        PipelineLayer { state: state.clone(), journal: state.journal().is_enabled() }
    }
}

impl<S> Layer<S> for PipelineLayer {
    type Service = Pipeline<S>;

    fn layer(&self, inner: S) -> Pipeline<S> {
        Pipeline { inner, state: self.state.clone(), journal: self.journal }
    }
}

/// The pipeline around one route.
#[derive(Clone)]
pub struct Pipeline<S> {
    inner: S,
    state: AppState,
    journal: bool,
}

impl<S> Service<Request> for Pipeline<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was polled ready runs this request; its clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let journal = self.journal;
        Box::pin(async move { Ok(run(state, journal, inner, request).await) })
    }
}

async fn run<S>(state: AppState, journal: bool, mut inner: S, mut request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let controlled = control::applies_to(&request);
    // One reading of the Clock for the journal's entry and the throttle's buckets.
    let now = state.now();
    let recording = if journal && controlled {
        let (recording, recorded) = control::journal::Recording::start(&state, request, now);
        request = recorded;
        Some(recording)
    } else {
        None
    };
    let begun = context::begin(&state, &mut request);
    let mut identity = RequestIdentity::default();
    let response = match begun.refusal() {
        Some(refusal) => refusal,
        None => match host::require_host(&request) {
            Err(refusal) => refusal.into_response(),
            Ok(()) if !controlled => pass(&mut inner, request).await,
            Ok(()) => {
                let (identified, admission) = control::admit(&state, &mut request, now).await;
                identity = identified;
                match admission {
                    Admission::Refused(refusal) => refusal,
                    Admission::Admitted(None) => pass(&mut inner, request).await,
                    Admission::Admitted(Some(firing)) => {
                        control::faults::inject(&state, firing, request, |request| pass(&mut inner, request)).await
                    }
                }
            }
        },
    };
    let response = begun.finish(&state, response);
    match recording {
        Some(recording) => recording.finish(response, identity),
        None => response,
    }
}

/// Runs the route. Its `poll_ready` was awaited by whoever called the pipeline.
async fn pass<S>(inner: &mut S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match inner.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
