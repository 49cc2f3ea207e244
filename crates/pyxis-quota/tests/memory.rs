//! The in-memory backend, limit by limit, in injected time.

use std::time::Duration;

use pyxis_quota::{BudgetPeriod, QuotaLimits, Quotas, Reason};

/// 2023-11-14T22:13:20Z, a whole second.
const T0: u64 = 1_700_000_000_000;
/// 2023-11-15T00:00:00Z and 2023-12-01T00:00:00Z.
const NEXT_DAY: u64 = 1_700_006_400_000;
const NEXT_MONTH: u64 = 1_701_388_800_000;

fn limits(f: impl FnOnce(&mut QuotaLimits)) -> QuotaLimits {
    let mut l = QuotaLimits::default();
    f(&mut l);
    l
}

#[tokio::test]
async fn requests_per_minute_slides() {
    let q = Quotas::memory();
    let l = limits(|l| l.requests_per_minute = Some(3));
    for i in 0..3 {
        let r = q
            .admit("t", &l, 0, T0 + 500 + i * 10_000)
            .await
            .expect("under the limit");
        q.settle(r, 0, 0.0, T0 + 600).await;
    }
    let rej = q.admit("t", &l, 0, T0 + 30_000).await.expect_err("fourth in a minute");
    assert_eq!(rej.reason, Reason::RequestsPerMinute);
    assert_eq!((rej.limit, rej.current), (3.0, 3.0));
    // The first request (second T0) leaves the window at T0 + 61 s.
    assert_eq!(rej.retry_after_s, 31);
    assert!(
        q.admit("t", &l, 0, T0 + 60_999).await.is_err(),
        "still inside the window"
    );
    assert!(q.admit("t", &l, 0, T0 + 61_000).await.is_ok(), "the oldest has left");
    assert!(q.admit("t", &l, 0, T0 + 61_000).await.is_err());
    // Other tenants are not affected.
    assert!(q.admit("u", &l, 0, T0 + 30_000).await.is_ok());
}

#[tokio::test]
async fn release_still_counts_for_rpm_but_frees_tokens_and_slot() {
    let q = Quotas::memory();
    let l = limits(|l| {
        l.requests_per_minute = Some(2);
        l.tokens_per_minute = Some(100);
        l.concurrent_requests = Some(1);
    });
    let r = q.admit("t", &l, 100, T0).await.expect("first");
    assert_eq!(
        q.admit("t", &l, 0, T0).await.expect_err("slot taken").reason,
        Reason::Concurrency
    );
    q.release(r, T0 + 10).await;
    let s = q.snapshot("t", T0 + 20).await;
    assert_eq!(
        (s.requests_last_minute, s.tokens_last_minute, s.concurrent_requests),
        (1, 0, 0)
    );
    let r = q
        .admit("t", &l, 100, T0 + 20)
        .await
        .expect("tokens and slot free again");
    q.settle(r, 10, 0.0, T0 + 30).await;
    assert_eq!(
        q.admit("t", &l, 0, T0 + 40).await.expect_err("rpm").reason,
        Reason::RequestsPerMinute
    );
}

#[tokio::test]
async fn tokens_per_minute_reserves_then_settles() {
    let q = Quotas::memory();
    let l = limits(|l| l.tokens_per_minute = Some(1000));
    let a = q.admit("t", &l, 600, T0).await.expect("600 of 1000");
    let rej = q
        .admit("t", &l, 500, T0 + 1)
        .await
        .expect_err("600 reserved + 500 > 1000");
    assert_eq!(rej.reason, Reason::TokensPerMinute);
    assert_eq!((rej.current, rej.requested), (600.0, 500.0));
    assert_eq!(rej.retry_after_s, 61);
    // The request used only 200: the other 400 come back at once.
    q.settle(a, 200, 0.0, T0 + 2_000).await;
    let b = q.admit("t", &l, 800, T0 + 2_500).await.expect("200 used + 800");
    assert_eq!(q.snapshot("t", T0 + 2_500).await.tokens_last_minute, 1000);
    assert!(q.admit("t", &l, 1, T0 + 3_000).await.is_err());
    // Using more than reserved is charged in full.
    q.settle(b, 900, 0.0, T0 + 4_000).await;
    assert_eq!(q.snapshot("t", T0 + 4_000).await.tokens_last_minute, 1100);
    let never = q
        .admit("t", &l, 1001, T0 + 200_000)
        .await
        .expect_err("larger than the limit");
    assert!(never.never_fits() && never.message().contains("never be admitted"));
}

#[tokio::test]
async fn concurrency_lease_expires() {
    let lease = Duration::from_secs(600);
    let q = Quotas::memory().with_slot_lease(lease);
    let l = limits(|l| {
        l.concurrent_requests = Some(2);
        l.tokens_per_day = Some(1000);
    });
    let _lost1 = q.admit("t", &l, 400, T0).await.expect("1");
    let _lost2 = q.admit("t", &l, 400, T0 + 1).await.expect("2");
    let rej = q.admit("t", &l, 0, T0 + 1_000).await.expect_err("both slots held");
    assert_eq!(
        (rej.reason, rej.retry_after_s, rej.current),
        (Reason::Concurrency, 1, 2.0)
    );
    // Nobody settles (the holder died): at the lease's end the first slot and its 400 tokens are given back.
    let s = q.snapshot("t", T0 + 600_000).await;
    assert_eq!((s.concurrent_requests, s.reserved_tokens), (1, 400));
    let r = q.admit("t", &l, 600, T0 + 600_000).await.expect("first lease expired");
    assert_eq!(
        q.admit("t", &l, 0, T0 + 600_000).await.expect_err("full").reason,
        Reason::Concurrency
    );
    q.settle(r, 0, 0.0, T0 + 600_001).await;
}

#[tokio::test]
async fn token_budgets_count_reservations_and_roll_over() {
    let q = Quotas::memory();
    let l = limits(|l| {
        l.tokens_per_day = Some(1000);
        l.tokens_per_month = Some(1500);
    });
    let a = q.admit("t", &l, 700, T0).await.expect("700 of 1000");
    let rej = q.admit("t", &l, 400, T0).await.expect_err("700 reserved");
    assert_eq!(
        (rej.reason, rej.period, rej.retry_after_s),
        (Reason::TokenBudget, Some(BudgetPeriod::Day), 1)
    );
    q.settle(a, 700, 0.0, T0 + 1_000).await;
    let rej = q.admit("t", &l, 400, T0 + 2_000).await.expect_err("700 settled");
    assert_eq!(rej.retry_after_s, (NEXT_DAY - T0 - 2_000).div_ceil(1000));
    assert_eq!(rej.reason.code(), "insufficient_quota");
    // A new UTC day: the daily budget is fresh, the month remembers.
    let b = q.admit("t", &l, 400, NEXT_DAY).await.expect("new day");
    q.settle(b, 400, 0.0, NEXT_DAY + 1).await;
    let s = q.snapshot("t", NEXT_DAY + 2).await;
    assert_eq!((s.tokens_today, s.tokens_this_month), (400, 1100));
    let rej = q
        .admit("t", &l, 500, NEXT_DAY + 3)
        .await
        .expect_err("month 1100 + 500 > 1500");
    assert_eq!(rej.period, Some(BudgetPeriod::Month));
    assert_eq!(rej.retry_after_s, (NEXT_MONTH - NEXT_DAY - 3).div_ceil(1000));
    assert!(q.admit("t", &l, 500, NEXT_MONTH).await.is_ok(), "new month");
    assert_eq!(q.snapshot("t", NEXT_MONTH).await.tokens_this_month, 0);
}

#[tokio::test]
async fn cost_budget_blocks_once_reached() {
    let q = Quotas::memory();
    let l = limits(|l| {
        l.cost_per_day = Some(1.0);
        l.cost_per_month = Some(10.0);
    });
    let a = q.admit("t", &l, 0, T0).await.expect("nothing spent");
    let b = q.admit("t", &l, 0, T0).await.expect("cost is only known at settle");
    q.settle(a, 10, 0.6, T0 + 1).await;
    let c = q.admit("t", &l, 0, T0 + 2).await.expect("0.6 < 1.0");
    q.settle(b, 10, 0.5, T0 + 3).await;
    q.release(c, T0 + 4).await;
    let rej = q.admit("t", &l, 0, T0 + 5).await.expect_err("1.1 >= 1.0");
    assert_eq!((rej.reason, rej.period), (Reason::CostBudget, Some(BudgetPeriod::Day)));
    assert!((rej.current - 1.1).abs() < 1e-9);
    assert_eq!(rej.retry_after_s, (NEXT_DAY - T0 - 5).div_ceil(1000));
    assert!(q.admit("t", &l, 0, NEXT_DAY).await.is_ok());
    let s = q.snapshot("t", NEXT_DAY).await;
    assert!((s.cost_this_month - 1.1).abs() < 1e-9 && s.cost_today == 0.0);
}

#[tokio::test]
async fn settle_twice_is_a_no_op() {
    let q = Quotas::memory();
    let l = limits(|l| l.tokens_per_day = Some(100));
    let r = q.admit("t", &l, 50, T0).await.expect("ok");
    q.settle(r.clone(), 30, 0.0, T0 + 1).await;
    q.settle(r.clone(), 30, 0.0, T0 + 2).await;
    q.release(r, T0 + 3).await;
    assert_eq!(q.snapshot("t", T0 + 4).await.tokens_today, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_burst_admits_exactly_the_limit() {
    for l in [
        limits(|l| l.requests_per_minute = Some(10)),
        limits(|l| l.concurrent_requests = Some(10)),
        limits(|l| l.tokens_per_minute = Some(1000)),
        limits(|l| l.tokens_per_day = Some(1000)),
    ] {
        let q = Quotas::memory();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (q, l) = (q.clone(), l.clone());
                tokio::spawn(async move { q.admit("t", &l, 100, T0).await.is_ok() })
            })
            .collect();
        let passed = futures::future::join_all(tasks)
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(true)))
            .count();
        assert_eq!(passed, 10, "{l:?}");
    }
}

#[test]
fn settle_in_background_settles_memory_state_at_once_without_a_runtime() {
    // No tokio runtime here: the memory backend must not need one to settle.
    let q = Quotas::memory();
    let l = limits(|l| {
        l.concurrent_requests = Some(1);
        l.tokens_per_minute = Some(1000);
    });
    let admit = |tokens, now| futures::executor::block_on(q.admit("t", &l, tokens, now));
    let r = admit(900, T0).expect("first");
    assert_eq!(admit(0, T0).expect_err("slot taken").reason, Reason::Concurrency);
    q.settle_in_background(r, 50, 0.0, T0 + 10);
    // Slot freed and the 900 reserved tokens replaced by the 50 used, before this line runs.
    let r2 = admit(900, T0 + 20).expect("slot free, 950 of 1000 tokens left after settling");
    q.settle_in_background(r2, 900, 0.0, T0 + 30);
    assert_eq!(
        admit(100, T0 + 40).expect_err("950 used").reason,
        Reason::TokensPerMinute
    );
}
