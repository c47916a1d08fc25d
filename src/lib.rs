//! hookgate: a receiving-side SIEM ingest gateway. Vendor webhooks in; verified,
//! deduplicated OCSF events out.
//!
//! # Layout: the trip of a request
//!
//! | module | stage |
//! |---|---|
//! | [`listener`] | 1. bind, TLS, accept, HTTP/1.1 + HTTP/2, graceful drain |
//! | [`pipeline`] | the trip: calls every stage below, in order |
//! | [`route`] | 2. (method, path) → source |
//! | [`body`] | 3. read with byte/time caps, decompress with a cap |
//! | [`auth`] | 4. trust: signatures, credentials, addresses |
//! | [`split`] | 5. one body → N raw events |
//! | [`dedup`] | 6. reserve / commit event ids |
//! | [`parse`] | 7. vendor parser definitions (`parsers/`) |
//! | [`normalize`] | 8. OCSF 1.8.0 events |
//! | [`sink`] | 9–10. make durable and publish: spool or direct, one entry point |
//! | [`spool`] | 9. append-only, checksummed, group-committed local queue |
//! | [`publish`] | 10. Kafka producer, topic routing, topic creation |
//! | [`respond`] | 11. outcome or error → HTTP answer |
//!
//! Around the trip: [`app`] (wiring, shutdown order), [`config`], [`admin`] (health, metrics,
//! status), [`metrics`], [`limits`] (rate limits, load shedding), [`health`] and [`status`]
//! (source health), [`telemetry`], [`tls`], [`reload`] (SIGHUP), [`shutdown`], [`cli`],
//! [`slow_delete`] (freeing large files without stalling syncs), [`huge_pages`] and
//! [`cpu_scheduling`] (process memory and CPU settings).

pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod cpu_scheduling;
pub mod dedup;
pub mod demo;
pub mod file_size_limit;
pub mod health;
pub mod huge_pages;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod normalize;
pub mod parse;
pub mod pipeline;
pub mod preview;
pub mod publish;
pub mod reload;
pub mod respond;
pub mod route;
pub mod shutdown;
pub mod sink;
pub mod slow_delete;
pub mod split;
pub mod spool;
pub mod status;
pub mod telemetry;
pub mod tls;

pub use app::run;
