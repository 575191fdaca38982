//! The shared per-sender budget against real PostgreSQL: two limiters (two dispatcher
//! processes) draw from one budget.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use keryu_dispatcher::rate_limit::{SenderRateLimiter, Slot};
use sqlx::PgPool;

const SENDER: &str = "+14155238886";

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn two_processes_share_one_budget_after_a_burst(pool: PgPool) {
    // 10 messages per second, bursts of 3.
    let first = SenderRateLimiter::new(pool.clone(), 10.0, 3, StdDuration::ZERO);
    let second = SenderRateLimiter::new(pool.clone(), 10.0, 3, StdDuration::ZERO);
    let mut slots = Vec::new();
    for n in 0..12 {
        let limiter = if n % 2 == 0 { &first } else { &second };
        slots.push(
            limiter
                .reserve(SENDER)
                .await
                .expect("slot")
                .expect("limited"),
        );
    }
    // The burst may go at once; every later slot is exactly one interval after the previous.
    for slot in &slots[..3] {
        assert!(slot.at <= slot.now, "{slot:?}");
    }
    assert!(slots[3].at > slots[3].now, "{:?}", slots[3]);
    for pair in slots.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, Duration::milliseconds(100));
    }
    // Another sender has a budget of its own.
    let other = first
        .reserve("+14155230000")
        .await
        .expect("slot")
        .expect("limited");
    assert!(other.at <= other.now);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_429_pauses_the_sender_for_every_process(pool: PgPool) {
    let first = SenderRateLimiter::new(pool.clone(), 100.0, 10, StdDuration::ZERO);
    let second = SenderRateLimiter::new(pool.clone(), 100.0, 10, StdDuration::ZERO);
    first
        .slow_down(SENDER, std::time::Duration::from_secs(5))
        .await
        .expect("slow down");
    let slot = second
        .reserve(SENDER)
        .await
        .expect("slot")
        .expect("limited");
    assert!(slot.at - slot.now > Duration::seconds(4), "{slot:?}");
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn zero_means_unlimited(pool: PgPool) {
    let unlimited = SenderRateLimiter::new(pool, 0.0, 1, StdDuration::ZERO);
    assert_eq!(unlimited.reserve(SENDER).await.expect("no database"), None);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn slots_leave_room_for_the_way_to_twilio(pool: PgPool) {
    // Ten a second per 1.05 s: 11 consecutive slots (M + burst + 1) span 1.05 s, not 1 s.
    let limiter = SenderRateLimiter::new(pool, 10.0, 1, StdDuration::from_millis(50));
    let mut slots = Vec::new();
    for _ in 0..11 {
        slots.push(reserve(&limiter).await);
    }
    for pair in slots.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, Duration::microseconds(105_000));
    }
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_missed_slot_is_traded_for_a_fresh_one(pool: PgPool) {
    // One message per second: a slot may be missed by half a second.
    let limiter = SenderRateLimiter::new(pool, 1.0, 1, StdDuration::ZERO);
    let first = reserve(&limiter).await;
    let second = reserve(&limiter).await;
    // The first is due: the send leaves at once, at it.
    assert_eq!(limiter.wait_to_send(SENDER, first).await, first);
    // The second is missed by 600 ms when its send gets to it; the fresh slot comes after
    // every slot taken so far, and the send waits for it.
    tokio::time::sleep_until(instant_of(second.at) + StdDuration::from_millis(600)).await;
    let fresh = limiter.wait_to_send(SENDER, second).await;
    assert!(fresh.at > second.at, "{fresh:?} after {second:?}");
    assert!(
        Utc::now() >= fresh.at,
        "left before its fresh slot {fresh:?}"
    );
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_send_stalled_while_waiting_for_its_slot_takes_a_fresh_one(pool: PgPool) {
    // One message per second. The second slot is a second away and its send waits for it in
    // time, but the thread is blocked from 900 ms to 1.6 s (a stalled process), so the wait
    // ends 600 ms after the slot: the send must not leave then, with the next slot's send.
    let limiter = SenderRateLimiter::new(pool, 1.0, 1, StdDuration::ZERO);
    let first = reserve(&limiter).await;
    let second = reserve(&limiter).await;
    assert_eq!(limiter.wait_to_send(SENDER, first).await, first);
    let stall = async {
        tokio::time::sleep_until(instant_of(second.at) - StdDuration::from_millis(100)).await;
        std::thread::sleep(StdDuration::from_millis(700));
    };
    let (sent_at, ()) = tokio::join!(limiter.wait_to_send(SENDER, second), stall);
    assert!(sent_at.at > second.at, "{sent_at:?} after {second:?}");
}

async fn reserve(limiter: &SenderRateLimiter) -> Slot {
    limiter
        .reserve(SENDER)
        .await
        .expect("slot")
        .expect("limited")
}

/// The Tokio instant at the wall-clock time `at`.
fn instant_of(at: DateTime<Utc>) -> tokio::time::Instant {
    tokio::time::Instant::now() + (at - Utc::now()).to_std().unwrap_or_default()
}
