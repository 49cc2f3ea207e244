//! Human output of `pyxis inspect`: the model's facts, then a fit matrix of accelerators × counts.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::info::{GIB, ModelInfo, TP_COUNTS};

/// `8.03B`, `820.6K`: parameter counts as people say them.
pub(crate) fn human_count(n: u64) -> String {
    let f = n as f64;
    if f >= 1e12 {
        format!("{:.2}T", f / 1e12)
    } else if f >= 1e9 {
        format!("{:.2}B", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2}M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}K", f / 1e3)
    } else {
        n.to_string()
    }
}

/// Bytes in the largest binary unit that keeps the number above 1.
pub(crate) fn human_bytes(b: u64) -> String {
    let f = b as f64;
    if f >= GIB {
        format!("{:.2} GiB", f / GIB)
    } else if f >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", f / (1024.0 * 1024.0))
    } else if f >= 1024.0 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn tokens(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 10_000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The facts table, the fit matrix and the notes, as `pyxis inspect` prints them.
pub fn render_table(info: &ModelInfo) -> String {
    let m = &info.memory;
    let mut facts = Table::new();
    facts
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["MODEL", info.name.as_str()]);
    let rows: Vec<(&str, String)> = vec![
        ("format", info.format.as_str().to_string()),
        ("architecture", info.architecture.clone()),
        (
            "parameters",
            format!(
                "{} ({} in {} tensors)",
                human_count(info.parameters),
                info.parameters,
                info.tensors
            ),
        ),
        (
            "precision",
            format!(
                "{} ({:.3} bytes/param{})",
                info.precision,
                info.bytes_per_param,
                info.precision_class.map_or(String::new(), |c| format!(", class {c}"))
            ),
        ),
        ("context length", opt(info.context_length)),
        ("layers", opt(info.layers)),
        ("hidden size", opt(info.hidden_size)),
        (
            "attention heads (KV)",
            format!("{} ({})", opt(info.attention_heads), opt(info.kv_heads)),
        ),
        ("head dim", opt(info.head_dim)),
        ("weights", human_bytes(info.weights_bytes)),
        ("KV cache / token", opt(info.kv_bytes_per_token.map(human_bytes))),
        (
            "KV cache, full context",
            match (m.kv_bytes_full_context, m.context_tokens) {
                (Some(kv), Some(c)) => format!("{} at {c} tokens, batch 1", human_bytes(kv)),
                _ => "-".to_string(),
            },
        ),
        (
            "overhead",
            format!("{} ({})", human_bytes(m.overhead_bytes), m.overhead_rule),
        ),
        ("total, one device", human_bytes(m.total_bytes)),
        ("files", info.files.join(", ")),
    ];
    if let Some(r) = info.kv_lora_rank {
        facts.add_row(vec!["MLA latent".to_string(), r.to_string()]);
    }
    for (k, v) in rows {
        facts.add_row(vec![k.to_string(), v]);
    }

    let mut fits = Table::new();
    let mut header = vec!["FITS ON".to_string(), "GiB EACH".to_string()];
    header.extend(TP_COUNTS.iter().map(|c| format!("×{c}")));
    fits.load_style(UTF8_FULL_CONDENSED).set_header(header);
    let mut classes: Vec<&str> = vec![];
    for f in &info.fits {
        if !classes.contains(&f.accelerator.as_str()) {
            classes.push(&f.accelerator);
        }
    }
    for class in classes {
        let of_class: Vec<_> = info.fits.iter().filter(|f| f.accelerator == class).collect();
        let memory = of_class.first().map_or(0.0, |f| f.memory_gib);
        let mut row = vec![class.to_string(), format!("{memory}")];
        for count in TP_COUNTS {
            row.push(match of_class.iter().find(|f| f.count == count) {
                None => "".to_string(),
                Some(f) if f.fits => match f.max_context_tokens {
                    Some(t) => format!("yes, KV {} tok", tokens(t)),
                    None => "yes".to_string(),
                },
                Some(f) if f.reason.as_deref().is_some_and(|r| r.contains("heads")) => "no (heads)".to_string(),
                Some(f) => format!("no ({:.1})", f.per_device_bytes as f64 / GIB),
            });
        }
        fits.add_row(row);
    }

    let mut out = format!("{facts}\n{fits}\n");
    out.push_str(
        "yes: fits at full context, batch 1; KV: tokens of cache the rest holds. no (n): needs n GiB per device.\n",
    );
    for n in &info.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
