//! The Redis backend against a real Redis (`REDIS_URL`): two `Quotas` play two gateway replicas sharing one limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyxis_quota::{BudgetPeriod, QuotaLimits, Quotas, Reason};
use tokio::net::{TcpListener, TcpStream};

const T0: u64 = 1_700_000_000_000;
const NEXT_DAY: u64 = 1_700_006_400_000;
const NEXT_MONTH: u64 = 1_701_388_800_000;

fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        println!("SKIPPED {test}: REDIS_URL is not set, so this Redis test did not run");
    }
    url
}

/// A key prefix no other test run shares, so tests run in parallel and again without cleanup.
fn prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "pyxis-quota-test:{test}:{}:{}:{}",
        std::process::id(),
        uuid_ish(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn uuid_ish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn replicas(url: &str, prefix: &str) -> (Quotas, Quotas) {
    let a = Quotas::redis(url, prefix).await.expect("replica a connects");
    let b = Quotas::redis(url, prefix).await.expect("replica b connects");
    (a, b)
}

fn limits(f: impl FnOnce(&mut QuotaLimits)) -> QuotaLimits {
    let mut l = QuotaLimits::default();
    f(&mut l);
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_limit_under_a_burst() {
    let Some(url) = redis_url("two_replicas_share_one_limit_under_a_burst") else {
        return;
    };
    for l in [
        limits(|l| l.requests_per_minute = Some(10)),
        limits(|l| l.concurrent_requests = Some(10)),
        limits(|l| l.tokens_per_minute = Some(1000)),
        limits(|l| l.tokens_per_day = Some(1000)),
    ] {
        let (a, b) = replicas(&url, &prefix("burst")).await;
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (q, l) = (if i % 2 == 0 { a.clone() } else { b.clone() }, l.clone());
                tokio::spawn(async move { q.admit("acme", &l, 100, T0 + i).await })
            })
            .collect();
        let mut passed = Vec::new();
        for t in futures::future::join_all(tasks).await {
            if let Ok(Ok(r)) = t {
                assert!(r.is_recorded(), "redis is up: every admission is recorded");
                passed.push(r);
            }
        }
        assert_eq!(passed.len(), 10, "{l:?}");
        let s = b.snapshot("acme", T0 + 200).await;
        assert_eq!(
            (s.requests_last_minute, s.concurrent_requests, s.reserved_tokens),
            (10, 10, 1000),
            "{s:?}"
        );
    }
}

#[tokio::test]
async fn settle_frees_what_was_not_used() {
    let Some(url) = redis_url("settle_frees_what_was_not_used") else {
        return;
    };
    let (a, b) = replicas(&url, &prefix("settle")).await;
    let l = limits(|l| {
        l.tokens_per_minute = Some(1000);
        l.concurrent_requests = Some(1);
    });
    let r = a.admit("acme", &l, 900, T0).await.expect("first");
    let rej = b
        .admit("acme", &l, 200, T0 + 10)
        .await
        .expect_err("slot and tokens held on the other replica");
    assert!(matches!(rej.reason, Reason::TokensPerMinute | Reason::Concurrency));
    assert_eq!(
        rej.retry_after_s, 61,
        "the window frees at T0 + 61 s, later than a slot"
    );
    // Settled on another replica than the one that admitted it.
    b.settle(r.clone(), 300, 0.25, T0 + 1_000).await;
    b.settle(r, 300, 0.25, T0 + 1_001).await; // a second settle does nothing
    let s = a.snapshot("acme", T0 + 1_500).await;
    assert_eq!(
        (s.tokens_last_minute, s.concurrent_requests, s.reserved_tokens),
        (300, 0, 0),
        "{s:?}"
    );
    assert_eq!((s.tokens_today, s.tokens_this_month), (300, 300));
    assert!((s.cost_today - 0.25).abs() < 1e-9);
    let r = b.admit("acme", &l, 700, T0 + 2_000).await.expect("300 used + 700");
    b.release(r, T0 + 2_100).await;
    assert_eq!(a.snapshot("acme", T0 + 2_200).await.tokens_last_minute, 300);
    let rej = a
        .admit("acme", &l, 701, T0 + 3_000)
        .await
        .expect_err("300 + 701 > 1000");
    assert_eq!(
        (rej.reason, rej.current, rej.requested, rej.retry_after_s),
        (Reason::TokensPerMinute, 300.0, 701.0, 58)
    );
}

#[tokio::test]
async fn a_dead_replicas_slots_expire_with_their_lease() {
    let Some(url) = redis_url("a_dead_replicas_slots_expire_with_their_lease") else {
        return;
    };
    let p = prefix("lease");
    let lease = Duration::from_secs(600);
    let l = limits(|l| {
        l.concurrent_requests = Some(2);
        l.tokens_per_day = Some(1000);
    });
    {
        let dying = Quotas::redis(&url, &p).await.expect("connects").with_slot_lease(lease);
        let _ = dying.admit("acme", &l, 500, T0).await.expect("1");
        let _ = dying.admit("acme", &l, 500, T0 + 1).await.expect("2");
    } // dropped without settling
    let q = Quotas::redis(&url, &p).await.expect("connects").with_slot_lease(lease);
    let rej = q
        .admit("acme", &l, 0, T0 + 599_999)
        .await
        .expect_err("both slots leased");
    assert_eq!(rej.reason, Reason::Concurrency);
    let r = q
        .admit("acme", &l, 500, T0 + 600_000)
        .await
        .expect("first lease expired, its 500 tokens given back");
    assert_eq!(
        q.admit("acme", &l, 1, T0 + 600_000)
            .await
            .expect_err("1000 reserved")
            .reason,
        Reason::Concurrency
    );
    // Settling after the lease ran out still charges the usage, once.
    q.settle(r, 100, 0.0, T0 + 1_300_000).await;
    let s = q.snapshot("acme", T0 + 1_300_000).await;
    assert_eq!(
        (s.concurrent_requests, s.reserved_tokens, s.tokens_today),
        (0, 0, 100),
        "{s:?}"
    );
    let ttl: Vec<i64> = {
        let client = redis::Client::open(url.as_str()).expect("url");
        let mut c = client.get_multiplexed_async_connection().await.expect("connects");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{p}:*"))
            .query_async(&mut c)
            .await
            .expect("keys");
        assert!(keys.len() >= 5, "{keys:?}");
        let mut ttls = Vec::new();
        for k in keys {
            ttls.push(redis::cmd("PTTL").arg(k).query_async(&mut c).await.expect("pttl"));
        }
        ttls
    };
    assert!(ttl.iter().all(|t| *t > 0), "every key expires: {ttl:?}");
}

#[tokio::test]
async fn budgets_run_per_utc_day_and_month() {
    let Some(url) = redis_url("budgets_run_per_utc_day_and_month") else {
        return;
    };
    let (a, b) = replicas(&url, &prefix("budget")).await;
    let l = limits(|l| {
        l.tokens_per_day = Some(1000);
        l.tokens_per_month = Some(1500);
        l.cost_per_day = Some(1.0);
    });
    let r = a.admit("acme", &l, 700, T0).await.expect("700");
    let rej = b.admit("acme", &l, 400, T0).await.expect_err("700 reserved");
    assert_eq!((rej.reason, rej.retry_after_s), (Reason::TokenBudget, 1));
    a.settle(r, 700, 0.4, T0 + 1).await;
    let rej = b.admit("acme", &l, 400, T0 + 2_000).await.expect_err("700 settled");
    assert_eq!(
        (rej.period, rej.retry_after_s),
        (Some(BudgetPeriod::Day), (NEXT_DAY - T0 - 2_000).div_ceil(1000))
    );
    let r = b.admit("acme", &l, 300, T0 + 3_000).await.expect("700 + 300 = 1000");
    b.settle(r, 300, 0.6, T0 + 4_000).await;
    let rej = a
        .admit("acme", &l, 0, T0 + 5_000)
        .await
        .expect_err("the day's cost budget is used up");
    assert_eq!(rej.period, Some(BudgetPeriod::Day));
    // A new day: fresh day budgets, the month goes on.
    let r = a.admit("acme", &l, 500, NEXT_DAY).await.expect("new day");
    let rej = b
        .admit("acme", &l, 1, NEXT_DAY)
        .await
        .expect_err("month: 1000 + 500 reserved");
    assert_eq!(
        (rej.reason, rej.period, rej.retry_after_s),
        (Reason::TokenBudget, Some(BudgetPeriod::Month), 1)
    );
    a.settle(r, 500, 0.0, NEXT_DAY + 1).await;
    let rej = b
        .admit("acme", &l, 1, NEXT_DAY + 1_000)
        .await
        .expect_err("month used up");
    assert_eq!(rej.retry_after_s, (NEXT_MONTH - NEXT_DAY - 1_000).div_ceil(1000));
    assert!(rej.message().contains("tokensPerMonth"), "{}", rej.message());
    assert!(b.admit("acme", &l, 1000, NEXT_MONTH).await.is_ok(), "new month");
}

#[tokio::test]
async fn cost_budget_per_month() {
    let Some(url) = redis_url("cost_budget_per_month") else {
        return;
    };
    let (a, b) = replicas(&url, &prefix("cost")).await;
    let l = limits(|l| l.cost_per_month = Some(5.0));
    for i in 0..5 {
        let r = a.admit("acme", &l, 10, T0 + i).await.expect("under budget");
        b.settle(r, 10, 1.0, T0 + i).await;
    }
    let rej = b.admit("acme", &l, 10, T0 + 10).await.expect_err("5.0 spent");
    assert_eq!(
        (rej.reason, rej.period, rej.reason.code()),
        (Reason::CostBudget, Some(BudgetPeriod::Month), "insufficient_quota")
    );
    assert_eq!(rej.retry_after_s, (NEXT_MONTH - T0 - 10).div_ceil(1000));
    assert!((a.snapshot("acme", T0 + 10).await.cost_this_month - 5.0).abs() < 1e-9);
}

/// A TCP relay to Redis that can be cut, to take "Redis" away from a connected replica.
async fn relay(to: std::net::SocketAddr) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (format!("redis://{addr}"), task)
}

#[tokio::test]
async fn redis_down_fails_open() {
    let Some(url) = redis_url("redis_down_fails_open") else {
        return;
    };
    // host:port of redis://[user@]host[:port][/db]
    let rest = url.trim_start_matches("redis://");
    let host_port = rest
        .split('/')
        .next()
        .unwrap_or(rest)
        .rsplit('@')
        .next()
        .unwrap_or(rest);
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:6379")
    };
    let Some(target) = tokio::net::lookup_host(host_port).await.ok().and_then(|mut a| a.next()) else {
        println!("SKIPPED redis_down_fails_open: cannot resolve {url} to a TCP address");
        return;
    };
    let (relay_url, relay_task) = relay(target).await;
    let q = Quotas::redis(&relay_url, &prefix("down"))
        .await
        .expect("connects through the relay");
    let q = q.with_redis_timeout(Duration::from_millis(300));
    let l = limits(|l| l.requests_per_minute = Some(1));
    assert!(q.admit("acme", &l, 0, T0).await.expect("first").is_recorded());
    assert!(q.admit("acme", &l, 0, T0).await.is_err(), "enforced while up");
    relay_task.abort(); // the listener and every relayed connection go away
    let _ = relay_task.await;
    let r = q.admit("acme", &l, 0, T0 + 1).await.expect("fails open");
    assert!(!r.is_recorded());
    q.settle(r, 10, 1.0, T0 + 2).await; // a no-op, and no panic
    assert!(q.backend_errors() >= 1);
    assert!(q.snapshot("acme", T0 + 3).await.error.is_some());
    assert!(
        Quotas::redis(&relay_url, "x").await.is_err(),
        "connecting to a dead Redis is an error"
    );
}
