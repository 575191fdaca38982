//! The shared per-sender budget against real PostgreSQL: two limiters (two dispatcher
//! processes) draw from one budget.

use chrono::Duration;
use keryu_dispatcher::rate_limit::SenderRateLimiter;
use sqlx::PgPool;

const SENDER: &str = "+14155238886";

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn two_processes_share_one_budget_after_a_burst(pool: PgPool) {
    // 10 messages per second, bursts of 3.
    let first = SenderRateLimiter::new(pool.clone(), 10.0, 3);
    let second = SenderRateLimiter::new(pool.clone(), 10.0, 3);
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
    let first = SenderRateLimiter::new(pool.clone(), 100.0, 10);
    let second = SenderRateLimiter::new(pool.clone(), 100.0, 10);
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
    let unlimited = SenderRateLimiter::new(pool, 0.0, 1);
    assert_eq!(unlimited.reserve(SENDER).await.expect("no database"), None);
}

#[sqlx::test(migrator = "keryu_infra::postgres::MIGRATOR")]
async fn a_missed_slot_is_traded_for_a_fresh_one(pool: PgPool) {
    // One message per second: a slot may be missed by half a second.
    let limiter = SenderRateLimiter::new(pool, 1.0, 1);
    let first = limiter
        .reserve(SENDER)
        .await
        .expect("slot")
        .expect("limited");
    let second = limiter
        .reserve(SENDER)
        .await
        .expect("slot")
        .expect("limited");
    // The second slot is a second away: in time, it is kept.
    assert_eq!(limiter.on_time(SENDER, second).await, second);
    // The first was due when reserved; 600 ms later it is missed, and the fresh slot comes
    // after every slot taken so far.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let fresh = limiter.on_time(SENDER, first).await;
    assert_ne!(fresh, first);
    assert!(fresh.at > second.at, "{fresh:?} after {second:?}");
}
