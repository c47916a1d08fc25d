//! The trip of a request, in order: the table of contents of the service.
//!
//! listener → **route → auth (head) → body → auth (raw bytes) → split → dedup → parse +
//! normalize → spool/publish → respond**. Each stage is one call below (parse and normalize
//! one call per event, `normalize::events`). The sender gets a 2xx only once its delivery
//! (`sink.start`) resolved, i.e. once its events are durable.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, Version};
use http_body_util::Full;
use tracing::{field, info_span, Instrument};

use crate::app::{Runtime, State};
use crate::auth::{self, Head};
use crate::body::{self, BodyError, BodyLimits};
use crate::dedup::{self, Reservation};
use crate::metrics::{EventOutcome, UNMATCHED};
use crate::normalize::{self, EventContext, Normalized};
use crate::respond::{self, Failure, Outcome};
use crate::route::{self, Incoming, RequestId, Routed};
use crate::sink::{Batch, DeadLetter, Delivery, Record, SinkError};
use crate::split::{self, Split};
use hyper::body::Body as _;
use sha2::{Digest, Sha256};

use crate::metrics::TOKEN_ENDPOINT;

/// Serves one request on the public port.
pub async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let _in_flight = state.metrics.in_flight();
    if let Some(refused) = crate::listener::refused_head(&state, peer, &request) {
        return refused;
    }
    // OAuth2 token endpoint ([trust] token_path, issue #3). It is hookgate's own
    // authorization server, not a source: answered here, it never enters the trip.
    let runtime = state.runtime.load_full();
    if let Some(issuer) = runtime.trust.token_endpoint(request.uri().path()) {
        let request_id = RequestId::of_request(request.headers(), runtime.trust.is_proxy(peer));
        // The per-address rate limit and the in-flight cap hold here too: without them a
        // client could guess client secrets at the token endpoint as fast as it can send.
        let client = runtime.trust.client(peer, request.headers());
        let span = info_span!("token", request_id = %request_id.0, %client);
        let (response, refused) = match runtime.protection.admit(TOKEN_ENDPOINT, client) {
            Ok(_admitted) => {
                let served = auth::token_endpoint::serve(
                    issuer,
                    request,
                    state.body_read_timeout,
                    &request_id,
                )
                .instrument(span)
                .await;
                (served.response, served.refused.map(|r| ("auth", r)))
            }
            Err(limited) => {
                crate::limits::log_shed(&limited, TOKEN_ENDPOINT, &request_id.0);
                let failure = Failure::Limited(limited);
                (
                    auth::token_endpoint::shed(&failure, &request_id),
                    Some(("limits", failure.code())),
                )
            }
        };
        let status = response.status().as_u16();
        state
            .metrics
            .request(TOKEN_ENDPOINT, status, started.elapsed());
        if let Some((stage, reason)) = refused {
            state.metrics.rejection(TOKEN_ENDPOINT, stage, reason);
        }
        return response;
    }
    // Who sent it (behind trusted proxies, the client they name): for the rate limits and
    // allowlists in the trip, and for the rejection log line.
    let client = runtime.trust.client(peer, request.headers());
    let (version, body_pending) = (request.version(), !request.body().is_end_stream());
    let incoming = Incoming::new(request, peer, runtime.trust.is_proxy(peer));
    let request_id = incoming.request_id.clone();
    let span = info_span!("request", request_id = %request_id.0, source = field::Empty, method = %incoming.parts.method);
    async move {
        let mut watch = Unanswered {
            state: &state,
            started,
            seen: Seen::default(),
            answered: false,
        };
        let result = trip(&state, &runtime, incoming, client, &mut watch.seen).await;
        watch.answered = true;
        let seen = &watch.seen;
        let source = seen.source.as_deref().unwrap_or(UNMATCHED);
        let mut response = respond::build(&result, &request_id);
        if result.is_err() && body_pending && !seen.body_read && version < Version::HTTP_2 {
            // hyper closes a connection whose request body it cannot drain at once; saying so
            // keeps the client from sending its next request into a closed connection.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        state.metrics.request(source, response.status().as_u16(), started.elapsed());
        match &result {
            Ok(outcome) => tracing::debug!(?outcome, "request accepted"),
            Err(failure) => {
                state.metrics.rejection(source, failure.stage(), failure.code());
                if seen.source.is_some() {
                    state.health.rejected(source, failure.code(), failure.is_auth());
                }
                let status = response.status().as_u16();
                // Shedding is the gateway working as designed; logging each shed request at
                // error would cost most exactly when the gateway is overloaded.
                if let Failure::Limited(limited) = failure {
                    crate::limits::log_shed(limited, source, &request_id.0);
                } else if status >= 500 && status != 501 {
                    tracing::error!(status, reason = failure.code(), error = %crate::telemetry::causes(failure), %client, "request failed");
                } else {
                    // A 501 too: the transfer coding the client chose, refused, not a failure.
                    tracing::info!(status, reason = failure.code(), %client, "request rejected");
                }
            }
        }
        response
    }
    .instrument(span)
    .await
}

/// A request's trip until it has its answer. hyper drops the trip when the sender hangs up
/// first (a client timeout while the gateway waits on Redis or Kafka): the request is then
/// counted under status 499 and logged, so a sender's give-ups show (its events, if their
/// delivery was under way, are counted by [`Reserved`]'s guard).
struct Unanswered<'s> {
    state: &'s State,
    started: Instant,
    seen: Seen,
    answered: bool,
}

/// The status label of a request its sender gave up on before the answer (nginx's "client
/// closed request").
const SENDER_GONE: u16 = 499;

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let source = self.seen.source.as_deref().unwrap_or(UNMATCHED);
        let elapsed = self.started.elapsed();
        self.state.metrics.request(source, SENDER_GONE, elapsed);
        let waited_ms = elapsed.as_millis() as u64;
        if self.state.draining.is_cancelled() {
            tracing::info!(waited_ms, "request cut before its answer during the stop (the grace period ran out, or its sender went away)");
        } else {
            tracing::info!(
                waited_ms,
                "request abandoned: its sender went away before the answer"
            );
        }
    }
}

/// What the trip learned that its answer needs.
#[derive(Debug, Default)]
struct Seen {
    /// The source's metrics label, once the path named one.
    source: Option<Arc<str>>,
    /// The request body was read to its end.
    body_read: bool,
}

async fn trip(
    state: &Arc<State>,
    runtime: &Runtime,
    incoming: Incoming,
    client: IpAddr,
    seen: &mut Seen,
) -> Result<Outcome, Failure> {
    // 2. route
    let Routed {
        incoming,
        source,
        path_token,
    } = route::resolve(&runtime.routes, incoming).inspect_err(|e| {
        // The path named a source: its refusal counts under it (metrics and status), so a
        // sender set to the wrong method shows on its source, not as unmatched traffic.
        if let route::RouteError::MethodNotAllowed { label, .. } = e {
            seen.source = Some(Arc::clone(label));
            tracing::Span::current().record("source", &**label);
        }
    })?;
    seen.source = Some(Arc::clone(&source.label));
    tracing::Span::current().record("source", source.name.as_str());

    // 2b. protection: rate limits, then a slot under the in-flight cap (held until answered).
    // Before any body byte is read, so a refused or shed request costs no body memory.
    // The client address honours [trust] trusted_proxies, so the per-address limit still
    // tells clients apart behind a load balancer.
    let _admitted = runtime.protection.admit(&source.name, client)?;
    let head = Head {
        headers: &incoming.parts.headers,
        peer: incoming.peer,
        client,
        path_token: path_token.as_deref(),
    };

    // 4a. auth, the checks that need no body (so refusals cost no body read)
    let head = auth::check_before_body(&source.verifier, head)?;

    // 3. body
    let limits = BodyLimits {
        max_body_bytes: source.max_body_bytes,
        max_decompressed_bytes: runtime.limits.max_decompressed_bytes,
        read_timeout: state.body_read_timeout,
    };
    body::check_head(
        &incoming.parts.headers,
        incoming.body.is_end_stream(),
        &limits,
    )?;
    let wire = body::read_wire(incoming.body, &incoming.parts.headers, &limits).await?;
    seen.body_read = true;
    let (raw, inflating) = match wire.decode_off_runtime(&limits).await {
        Ok(decoded) => decoded,
        // A body that arrived whole but does not decode, from a sender it authenticates as
        // sent (credentials in the head, or a signature over these very bytes): kept before
        // its 400, since the sender's retries cannot fix it. A bomb (over the inflate cap) is not.
        Err(BodyError::CorruptEncoding { encoding, .. })
            if auth::verify(&source.verifier, &head, wire.bytes()).is_ok() =>
        {
            let refusal = Failure::Body(BodyError::CorruptEncoding {
                encoding,
                kept: true,
            });
            let why = (refusal.code(), refusal.to_string());
            dead_letter_body(state, &source, &incoming.request_id, wire.bytes(), why).await?;
            return Err(refusal);
        }
        Err(e) => return Err(e.into()),
    };

    // 4b. auth over the exact raw bytes
    let authenticated = auth::verify(&source.verifier, &head, &raw)?;
    drop(inflating);

    // 5. split. An authenticated body that holds no readable events is refused (400) but
    // kept first: the vendor's retries cannot fix it, and its bytes are the SOC's evidence.
    let split = split::events(
        &raw,
        &source.parser,
        &incoming.parts.headers,
        runtime.limits.max_events_per_request,
    );
    let split = match split {
        Err(e) if e.is_unreadable() => {
            let why = (e.code(), e.to_string());
            dead_letter_body(state, &source, &incoming.request_id, &raw, why).await?;
            return Err(e.into());
        }
        other => other?,
    };
    let events = match split {
        Split::Heartbeat => {
            // The vendor's health call: the source's heartbeat, never an event. A body that
            // says more than a ping is answered as one too (the sender's health check must
            // pass) but kept first: it may be an event in a shape nobody documented.
            if let Some(code) = split::heartbeat_says_more_than_a_ping(&raw) {
                let why = (
                    code,
                    "a body taken as the vendor's health call, kept because it says more than a ping".to_owned(),
                );
                dead_letter_body(state, &source, &incoming.request_id, &raw, why).await?;
            }
            state.metrics.heartbeat(&source.name);
            state.health.heartbeat(&source.name);
            return Ok(Outcome::Heartbeat);
        }
        Split::Events(events) => events,
    };
    // From here on every event of the request is counted: published, duplicate or dead
    // letter once durable (`Tally`), rejected when the request fails.
    let split_events = events.len() as u64;
    let request = (&incoming.request_id, &incoming.parts, incoming.received_at);
    let result = trip_events(state, &source, request, authenticated, events).await;
    if result.is_err() {
        let (name, vendor) = (&source.name, &source.vendor);
        state
            .metrics
            .events(name, vendor, "none", EventOutcome::Rejected, split_events);
    }
    result
}

/// Stages 5b–10 of a request's trip, for the events split out of its body.
async fn trip_events(
    state: &Arc<State>,
    source: &Arc<route::Source>,
    (request_id, head, received_at): (&RequestId, &Parts, SystemTime),
    authenticated: auth::Authenticated,
    mut events: Vec<split::RawEvent<'_>>,
) -> Result<Outcome, Failure> {
    let received_at_ms = received_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);

    // 5b. freshness (an `hmac` check's `max_age_s`): an event signed too long ago is a replay.
    if let Some(max_age) = source.verifier.max_event_age() {
        auth::freshness::check(max_age, &source.parser, &mut events, received_at_ms)?;
    }

    // 6. dedup: reserve every event's key (committed below only once durable).
    let (holder, fresh, keys, duplicates) =
        match dedup::check_waiting(&state.dedup, &source.name, events).await? {
            Reservation::Held {
                holder,
                fresh,
                keys,
                duplicates,
            } => (holder, fresh, keys, duplicates),
            Reservation::InFlight(_) => return Err(Failure::InFlight),
        };
    let mut reserved = Reserved::new(state, source, holder, keys);

    // 7–8. parse and normalize; what cannot be mapped becomes a dead letter, never a drop.
    let request = EventContext {
        source: &source.name,
        vendor: &source.vendor,
        tenant: &source.tenant,
        request_id: &request_id.0,
        received_at_ms,
        auth_scheme: authenticated.scheme,
        headers: &head.headers,
        raw: "",
    };
    // Sessions this request's events look up that another replica (or this process before a
    // restart) stored: read from Redis first, when the session cache is shared.
    crate::parse::recall_sessions(&source.parser, &fresh, &request).await;
    let Normalized {
        records,
        published,
        dead_lettered,
    } = normalize::events(&source.parser, fresh, &request);
    let events = records.len();
    let tally = Tally {
        published,
        duplicates,
        dead_lettered,
    };

    // 9–10. spool / publish: only a durable batch is acknowledged, and counted then.
    if records.is_empty() {
        tally.record(state, source);
    } else {
        let batch = Batch {
            source: Arc::clone(&source.label),
            vendor: Arc::clone(&source.vendor_label),
            request_id: request_id.0.clone(),
            records,
        };
        reserved.deliver(batch, tally).await?;
    }

    // 11. respond (the caller builds the answer from this outcome)
    Ok(Outcome::Accepted { events, duplicates })
}

/// What a request's events count once they are durable: by class, duplicates, dead letters
/// (`hookgate_events_total`), and the source's last event with the status page's lookback.
/// Recorded by the trip, or by its drop guard when the sender hung up during the delivery.
struct Tally {
    /// (class name, JSON) of each OCSF event.
    published: Vec<(&'static str, Bytes)>,
    /// Events the dedup store had seen.
    duplicates: usize,
    /// Events kept as dead letters.
    dead_lettered: u64,
}

impl Tally {
    /// Counts the request's events as durable.
    fn record(self, state: &State, source: &route::Source) {
        let (classes, lookback): (Vec<&'static str>, Vec<Bytes>) =
            self.published.into_iter().unzip();
        let (name, vendor) = (&source.name, &source.vendor);
        state
            .metrics
            .batch(name, vendor, &classes, self.duplicates, self.dead_lettered);
        state.health.accepted(name, &lookback);
    }

    /// Every event of the request, for the count of rejected ones.
    fn events(&self) -> u64 {
        let n = self.published.len() + self.duplicates;
        u64::try_from(n).unwrap_or(u64::MAX) + self.dead_lettered
    }
}

/// The dedup keys a request reserved, until it has committed or released them itself. hyper
/// drops a request's trip when its sender hangs up (a timeout, a reset); dropped here, the
/// keys are settled on a task of their own instead of staying reserved (the sender's retry
/// answered 409 until the reservation lapsed): committed when the events were delivered,
/// released when they were not, and, when the delivery was under way (a spool append, a
/// Kafka produce during an outage), once its verdict is in. Until then the sender's retries
/// wait for it as for any delivery in flight, rather than publish copies of their own.
struct Reserved {
    state: Arc<State>,
    source: Arc<route::Source>,
    /// Whose reservations the keys are.
    holder: dedup::Holder,
    /// Still to settle; emptied once settled.
    keys: Vec<crate::parse::EventKey>,
    /// The events are durable: commit, not release.
    delivered: bool,
    /// The delivery under way, while the trip awaits it.
    delivery: Option<Delivery>,
    /// What the delivered events count, until counted.
    tally: Option<Tally>,
}

impl Reserved {
    fn new(
        state: &Arc<State>,
        source: &Arc<route::Source>,
        holder: dedup::Holder,
        keys: Vec<crate::parse::EventKey>,
    ) -> Reserved {
        Reserved {
            state: Arc::clone(state),
            source: Arc::clone(source),
            holder,
            keys,
            delivered: false,
            delivery: None,
            tally: None,
        }
    }

    /// Makes `batch` durable, counts its events (`tally`) once it is, then settles the keys by
    /// the verdict: committed once the events are durable, released when they are not. The
    /// keys stay held while the store answers, so a trip dropped meanwhile settles them (and
    /// counts the events) all the same.
    async fn deliver(&mut self, batch: Batch, tally: Tally) -> Result<(), SinkError> {
        let sink = &self.state.sink;
        let started = Instant::now();
        self.tally = Some(tally);
        let delivered = match sink.start(batch) {
            Ok(delivery) => {
                // Held meanwhile: dropped before the verdict, this guard hands it to a task.
                let delivery = self.delivery.insert(delivery);
                let verdict = delivery.await;
                self.delivery = None;
                verdict
            }
            Err(e) => Err(e),
        };
        sink.record(&self.state.metrics, started, &delivered);
        self.delivered = delivered.is_ok();
        if let (true, Some(tally)) = (self.delivered, self.tally.take()) {
            tally.record(&self.state, &self.source);
        }
        settle(
            &self.state,
            &self.source.name,
            &self.holder,
            &self.keys,
            self.delivered,
        )
        .await;
        self.keys.clear();
        delivered
    }
}

/// Commits `keys` when their events were `delivered`, else releases them. Once the events
/// are durable the answer is 2xx whatever the dedup store says (a 503 would have the vendor
/// send them again): a failed commit is logged, and keys left reserved (Redis unreachable)
/// hold a retry off with 409 until the reservation's TTL lapses.
async fn settle(
    state: &State,
    source: &str,
    holder: &dedup::Holder,
    keys: &[crate::parse::EventKey],
    delivered: bool,
) {
    if !delivered {
        dedup::release_all(&state.dedup, source, holder, keys.iter()).await;
    } else if let Err(e) = dedup::commit_all(&state.dedup, source, keys).await {
        tracing::error!(
            error = %crate::telemetry::causes(&e),
            reason = e.code(),
            events = keys.len(),
            "dedup commit failed after delivery; the events are durable and answered 2xx"
        );
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, source, holder, keys) = (
            Arc::clone(&self.state),
            Arc::clone(&self.source),
            self.holder.clone(),
            std::mem::take(&mut self.keys),
        );
        let (delivered, delivery) = (self.delivered, self.delivery.take());
        let tally = self.tally.take();
        runtime.spawn(async move {
            let under_way = delivery.is_some();
            let delivered = match delivery {
                Some(delivery) => delivery.await.is_ok(),
                None => delivered,
            };
            // A delivery the trip did not see end is counted here, as the trip would have.
            if let (true, Some(tally)) = (under_way, tally) {
                if delivered {
                    tally.record(&state, &source);
                } else {
                    let (name, vendor, n) = (&source.name, &source.vendor, tally.events());
                    state
                        .metrics
                        .events(name, vendor, "none", EventOutcome::Rejected, n);
                }
            }
            // During a stop, the grace period's end closes the connections still open.
            let why = if state.draining.is_cancelled() {
                "request cut mid-trip during the stop (the grace period ran out, or its sender went away); its dedup keys settled"
            } else {
                "request dropped mid-trip (its sender went away); its dedup keys settled"
            };
            tracing::info!(
                source = %source.name,
                events = keys.len(),
                delivered,
                under_way,
                "{why}"
            );
            settle(&state, &source.name, &holder, &keys, delivered).await;
        });
    }
}

/// Keeps an authenticated body that yields no event (split could not read it, or a text
/// heartbeat that says more than a ping) as one dead letter with its exact bytes and `(reason
/// code, reason)`, before the request is answered. Its id is the body's SHA-256, the same for
/// every retry of it; a retry of a body already kept is answered alike but not kept again
/// (the dedup store remembers it under [`DeadLetter::body_key`]). Fails
/// (→ 503, so the vendor retries) when the dead letter is not durable.
async fn dead_letter_body(
    state: &Arc<State>,
    source: &Arc<route::Source>,
    request_id: &RequestId,
    raw: &Bytes,
    (reason_code, reason): (&'static str, String),
) -> Result<(), Failure> {
    let uid = hex::encode(Sha256::digest(raw));
    let key = DeadLetter::body_key(&uid);
    // A store that fails here costs at most a second copy; the body is kept all the same.
    let holder = state.dedup.holder();
    let keys = match state.dedup.reserve(&source.name, &key, &holder).await {
        Ok(dedup::Dedup::Seen) => {
            tracing::info!(
                reason = reason_code,
                dead_letter = %uid,
                "body already kept as a dead letter (a retry); not kept again"
            );
            return Ok(());
        }
        Ok(dedup::Dedup::New) => vec![key],
        Ok(_) | Err(_) => Vec::new(),
    };
    let letter = DeadLetter {
        uid,
        // Remembered under `dead-letter:<uid>` above, not under its uid.
        window: None,
        reason_code,
        reason,
        raw: raw.clone(),
    };
    let batch = Batch {
        source: Arc::clone(&source.label),
        vendor: Arc::clone(&source.vendor_label),
        request_id: request_id.0.clone(),
        records: vec![Record::DeadLetter(letter)],
    };
    let tally = Tally {
        published: Vec::new(),
        duplicates: 0,
        dead_lettered: 1,
    };
    Reserved::new(state, source, holder, keys)
        .deliver(batch, tally)
        .await?;
    tracing::warn!(
        reason = reason_code,
        bytes = raw.len(),
        "body kept as a dead letter"
    );
    Ok(())
}
