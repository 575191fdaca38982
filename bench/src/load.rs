//! Load generators: a closed loop of N clients (each sends its next request when the previous
//! one answered), and an open loop at a fixed arrival rate (requests leave on schedule whether
//! or not earlier ones answered, so a slow server cannot slow the arrivals down — no
//! coordinated omission).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{Latency, LatencySummary};

/// Builds the request numbered `seq`.
pub type MakeRequest = Rc<dyn Fn(u64) -> reqwest::RequestBuilder>;

/// When a closed loop stops.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// After this long.
    Elapsed(Duration),
    /// After this many requests were sent.
    Sent(u64),
}

/// What a closed loop measured.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Latencies of the requests answered with the expected status.
    pub latency: Latency,
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Other answers and failures, by status code or error kind.
    pub errors: BTreeMap<String, u64>,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
}

/// The JSON form of a [`ClosedLoop`].
#[derive(Debug, Clone, Serialize)]
pub struct ClosedLoopReport {
    /// Expected answers per second.
    pub ok_per_second: f64,
    /// Expected answers.
    pub ok: u64,
    /// Other answers by status or error kind.
    pub errors: BTreeMap<String, u64>,
    /// Seconds measured.
    pub elapsed_seconds: f64,
    /// Latency of the expected answers.
    pub latency: LatencySummary,
}

impl ClosedLoop {
    /// Expected answers per second.
    pub fn ok_per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Every error counted.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The JSON form.
    pub fn report(&self) -> ClosedLoopReport {
        ClosedLoopReport {
            ok_per_second: self.ok_per_second(),
            ok: self.ok,
            errors: self.errors.clone(),
            elapsed_seconds: self.elapsed.as_secs_f64(),
            latency: self.latency.summary(),
        }
    }
}

/// The name an error is counted under.
fn error_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_connect() {
        "connect".to_owned()
    } else {
        "transport".to_owned()
    }
}

/// Posts notifications (`CreateNotification`, 202 expected) through `deployment`'s API from
/// `clients` concurrent clients until `until`, the `seq`-th with `body(seq)`; hands the
/// deployment back once the load generator is done with it.
///
/// # Errors
/// Only if a client still held the deployment (a bug in the load generator).
pub async fn post_notifications(
    deployment: crate::deployment::Deployment,
    clients: usize,
    until: Until,
    body: impl Fn(u64) -> String + 'static,
) -> anyhow::Result<(crate::deployment::Deployment, ClosedLoop)> {
    let target = Rc::new(deployment);
    let make: MakeRequest = {
        let target = Rc::clone(&target);
        Rc::new(move |seq: u64| target.create_notification(seq, body(seq)))
    };
    let posted = closed_loop(clients, until, 202, make).await;
    let deployment = Rc::try_unwrap(target)
        .map_err(|_| anyhow::anyhow!("the load generator still holds the deployment"))?;
    Ok((deployment, posted))
}

/// Runs `clients` concurrent clients sending `make(seq)` until `until`; an answer with
/// `expected` status counts as ok.
pub async fn closed_loop(
    clients: usize,
    until: Until,
    expected: u16,
    make: MakeRequest,
) -> ClosedLoop {
    let started = Instant::now();
    let next = Rc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        let next = next.clone();
        let make = make.clone();
        workers.push(async move {
            let mut latency = Latency::new();
            let mut ok = 0u64;
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let more = match until {
                    Until::Elapsed(duration) => started.elapsed() < duration,
                    Until::Sent(count) => seq < count,
                };
                if !more {
                    break;
                }
                let sent = Instant::now();
                match make(seq).send().await {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        // Read the whole body: the latency is until the answer is complete.
                        let _ = answer.bytes().await;
                        if status == expected {
                            ok += 1;
                            latency.record(sent.elapsed());
                        } else {
                            *errors.entry(status.to_string()).or_default() += 1;
                        }
                    }
                    Err(error) => *errors.entry(error_kind(&error)).or_default() += 1,
                }
            }
            (latency, ok, errors)
        });
    }
    let mut total = ClosedLoop {
        latency: Latency::new(),
        ok: 0,
        errors: BTreeMap::new(),
        elapsed: Duration::ZERO,
    };
    for (latency, ok, errors) in futures_util::future::join_all(workers).await {
        total.latency.merge(&latency);
        total.ok += ok;
        for (kind, count) in errors {
            *total.errors.entry(kind).or_default() += count;
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// One request of an open loop.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Its number.
    pub seq: u64,
    /// When its accepted answer arrived, µs since the epoch (`None` if not accepted).
    pub accepted_micros: Option<i64>,
    /// How long the answer took.
    pub latency: Duration,
    /// How late it left compared with its schedule.
    pub lag: Duration,
}

/// What an open loop measured.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// Every request sent, in no particular order.
    pub arrivals: Vec<Arrival>,
    /// Answers other than `expected`, and failures.
    pub errors: BTreeMap<String, u64>,
    /// Requests not sent because too many were already waiting (the server fell behind).
    pub shed: u64,
    /// From the first to the last scheduled send.
    pub sending: Duration,
}

impl OpenLoop {
    /// Accepted requests.
    pub fn accepted(&self) -> impl Iterator<Item = &Arrival> {
        self.arrivals.iter().filter(|a| a.accepted_micros.is_some())
    }

    /// Latency of the accepted answers.
    pub fn answer_latency(&self) -> Latency {
        let mut latency = Latency::new();
        for arrival in self.accepted() {
            latency.record(arrival.latency);
        }
        latency
    }
}

/// Sends `make(seq)` at `rate` per second for `duration`, evenly spaced, never more than
/// `max_in_flight` waiting at once.
pub async fn open_loop(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    expected: u16,
    make: MakeRequest,
) -> OpenLoop {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let in_flight = Rc::new(AtomicU64::new(0));
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let mut shed = 0u64;
    local
        .run_until(async {
            for seq in 0..total {
                let due = started + interval.mul_f64(seq as f64);
                tokio::time::sleep_until(due.into()).await;
                if in_flight.load(Ordering::Relaxed) >= max_in_flight as u64 {
                    shed += 1;
                    continue;
                }
                let lag = due.elapsed();
                let request = make(seq);
                let sender = sender.clone();
                let in_flight = in_flight.clone();
                in_flight.fetch_add(1, Ordering::Relaxed);
                tokio::task::spawn_local(async move {
                    let sent = Instant::now();
                    let outcome = match request.send().await {
                        Ok(answer) => {
                            let status = answer.status().as_u16();
                            let _ = answer.bytes().await;
                            let accepted_at = chrono::Utc::now().timestamp_micros();
                            (status == expected)
                                .then_some(accepted_at)
                                .ok_or_else(|| status.to_string())
                        }
                        Err(error) => Err(error_kind(&error)),
                    };
                    let latency = sent.elapsed();
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    let _ = sender.send((seq, outcome, latency, lag));
                });
            }
        })
        .await;
    let sending = started.elapsed();
    drop(sender);
    // Let the requests still in flight finish.
    local.await;
    let mut result = OpenLoop {
        arrivals: Vec::with_capacity(usize::try_from(total).unwrap_or(0)),
        errors: BTreeMap::new(),
        shed,
        sending,
    };
    while let Ok((seq, outcome, latency, lag)) = receiver.try_recv() {
        let accepted_micros = match outcome {
            Ok(at) => Some(at),
            Err(kind) => {
                *result.errors.entry(kind).or_default() += 1;
                None
            }
        };
        result.arrivals.push(Arrival {
            seq,
            accepted_micros,
            latency,
            lag,
        });
    }
    result
}
