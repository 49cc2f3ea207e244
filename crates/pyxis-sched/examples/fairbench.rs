//! FAIRBENCH S1–S7, VTC against FCFS on the virtual-time simulator:
//! `cargo run --release -p pyxis-sched --example fairbench [-- --json] [--scale F] [--seed N] [--budget M]
//! [--headroom R] [--only S2]`.

use std::sync::Mutex;

use pyxis_sched::fairbench::{BenchOptions, FairReport, PolicyReport, Scenario, fairbench_with};

fn main() -> Result<(), String> {
    let mut opts = BenchOptions::default();
    let (mut json, mut seed, mut only) = (false, 1u64, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--json" => json = true,
            "--scale" => opts.scale = value()?.parse().map_err(|e| format!("--scale: {e}"))?,
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--budget" => opts.budget_tokens = value()?.parse().map_err(|e| format!("--budget: {e}"))?,
            "--headroom" => opts.headroom_tokens = value()?.parse().map_err(|e| format!("--headroom: {e}"))?,
            "--only" => only.push(value()?.parse::<Scenario>()?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let scenarios: Vec<Scenario> = if only.is_empty() {
        Scenario::all().to_vec()
    } else {
        only
    };
    let started = std::time::Instant::now();
    let results: Mutex<Vec<FairReport>> = Mutex::new(Vec::new());
    let next = Mutex::new(scenarios.clone().into_iter());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(scenarios.len());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(sc) = next.lock().ok().and_then(|mut it| it.next()) {
                    let r = fairbench_with(sc, seed, &opts);
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                }
            });
        }
    });
    let mut reports = results.into_inner().map_err(|e| e.to_string())?;
    reports.sort_by_key(|r| scenarios.iter().position(|s| *s == r.scenario));
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?);
        return Ok(());
    }
    print_table(&reports);
    let failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|c| !c.pass)
                .map(move |c| format!("{} {}", r.scenario, c.goal))
        })
        .collect();
    println!(
        "\n{} goals checked, {} missed{}; {:.1} s wall",
        reports.iter().map(|r| r.checks.len()).sum::<usize>(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join(", "))
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn row(scenario: &str, p: &PolicyReport, fcfs_thr: f64) {
    println!(
        "| {scenario:<3} | {:<4} | {:>9.0} | {:>6.3} | {:>6.3} | {:>6.3} | {:>8.0} | {:>6.3} |",
        format!("{:?}", p.policy).to_uppercase(),
        p.max_gap,
        p.gap_over_bound,
        p.jain_mean,
        p.jain_floor_p5,
        p.throughput_tok_s,
        p.throughput_tok_s / fcfs_thr.max(1e-9),
    );
}

fn print_table(reports: &[FairReport]) {
    if let Some(r) = reports.first() {
        println!(
            "FAIRBENCH seed {}: 1 engine, in-flight budget M = {} tokens, C = {:.0} weighted tok/s, 2U = {:.0}",
            r.seed, r.budget_tokens, r.capacity_wtok_s, r.two_u
        );
    }
    println!("\n| sc  | pol  |   max gap | gap/2U |  Jain  | floor5 |    tok/s | /FCFS  |");
    println!("|-----|------|-----------|--------|--------|--------|----------|--------|");
    for r in reports {
        if let Some(e) = &r.error {
            println!("| {:<3} | error: {e}", r.scenario.to_string());
            continue;
        }
        let s = r.scenario.to_string();
        row(&s, &r.vtc, r.fcfs.throughput_tok_s);
        row(&s, &r.fcfs, r.fcfs.throughput_tok_s);
    }
    for r in reports {
        println!("\n{} — {}", r.scenario, r.title);
        for (a, b) in r.vtc.extra.iter().zip(&r.fcfs.extra) {
            println!("  {:<48} VTC {:>9.4}   FCFS {:>9.4}", a.name, a.value, b.value);
        }
        for c in &r.checks {
            println!(
                "  {:<4} {:<36} {:>9.4}  target {}",
                if c.pass { "PASS" } else { "MISS" },
                c.goal,
                c.value,
                c.target
            );
        }
    }
}
