//! Checks runtime endpoint URLs: absolute `http`/`https` base URLs without query, fragment or credentials.

/// `Ok` when `url` is an acceptable endpoint base URL, else why not.
pub(crate) fn check_endpoint(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must be an absolute URL starting with http:// or https://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces");
    }
    if url.contains('?') {
        return Err("must not have a query (`?...`)");
    }
    if url.contains('#') {
        return Err("must not have a fragment (`#...`)");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not hold credentials; put the token in an environment variable named by apiKeyEnv");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("has an unclosed `[` in its host")?;
            if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                return Err("has an invalid IPv6 host");
            }
            match after {
                "" => (addr, None),
                p => (addr, Some(p.strip_prefix(':').ok_or("has junk after its IPv6 host")?)),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if !authority.starts_with('[')
        && !host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err("has an invalid host");
    }
    if let Some(p) = port
        && !(p.bytes().all(|b| b.is_ascii_digit()) && matches!(p.parse::<u32>(), Ok(1..=65535)))
    {
        return Err("has an invalid port (expected 1 to 65535)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn good() {
        for u in [
            "http://localhost:8000",
            "https://api.openai.com/v1",
            "http://10.0.0.5:8080/",
            "http://[::1]:8000",
            "http://vllm-0.vllm.svc.cluster.local:8000",
        ] {
            assert_eq!(check_endpoint(u), Ok(()), "{u}");
        }
    }

    #[test]
    fn bad() {
        for (u, why) in [
            (
                "localhost:8000",
                "must be an absolute URL starting with http:// or https://",
            ),
            ("ftp://x", "must be an absolute URL starting with http:// or https://"),
            ("http://", "has no host"),
            ("http://:80", "has no host"),
            ("http://a b", "must not contain spaces"),
            ("http://x/?a=1", "must not have a query (`?...`)"),
            ("http://x#f", "must not have a fragment (`#...`)"),
            (
                "http://u:p@x",
                "must not hold credentials; put the token in an environment variable named by apiKeyEnv",
            ),
            ("http://x:0", "has an invalid port (expected 1 to 65535)"),
            ("http://x:99999", "has an invalid port (expected 1 to 65535)"),
            ("http://x:+80", "has an invalid port (expected 1 to 65535)"),
            ("http://x..y", "has an invalid host"),
            ("http://[::1", "has an unclosed `[` in its host"),
        ] {
            assert_eq!(check_endpoint(u), Err(why), "{u}");
        }
    }
}
