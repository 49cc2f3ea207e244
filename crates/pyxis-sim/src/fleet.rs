//! The fleet file of `pyxis sim fleet -f FILE`: a YAML list of engines (or `{host, engines}`).

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use crate::{EngineHandle, EngineSpec, EngineTuning, FaultConfig, Surface};

/// One entry of the fleet file; `replicas` > 1 expands to `name-0`, `name-1`, … on consecutive
/// ports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetEngine {
    /// Name (with `-N` appended per replica when `replicas` > 1).
    pub name: String,
    /// Hardware profile key.
    pub hardware: String,
    /// Model profile key.
    pub model: String,
    /// First port; absent or 0 picks free ports.
    #[serde(default)]
    pub port: Option<u16>,
    /// Copies of this engine.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Runtime API.
    #[serde(default)]
    pub surface: Surface,
    /// Names served (default: the model key).
    #[serde(default)]
    pub served_model_names: Vec<String>,
    /// Output seed (each replica adds its index).
    #[serde(default)]
    pub seed: u64,
    /// Simulated seconds per wall second.
    #[serde(default = "one_f")]
    pub speedup: f64,
    /// Faults from the start.
    #[serde(default)]
    pub faults: FaultConfig,
    /// Engine overrides.
    #[serde(default)]
    pub tuning: EngineTuning,
}

fn one() -> u32 {
    1
}

fn one_f() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FleetFile {
    List(Vec<FleetEngine>),
    Doc {
        #[serde(default)]
        host: Option<IpAddr>,
        engines: Vec<FleetEngine>,
    },
}

/// A parsed fleet: engine specs with the address each listens on.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Specs and listen addresses, in file order.
    pub engines: Vec<(EngineSpec, SocketAddr)>,
}

impl Fleet {
    /// Parses YAML; `default_host` applies unless the file names a host.
    pub fn parse(text: &str, default_host: IpAddr) -> anyhow::Result<Fleet> {
        let file: FleetFile = serde_yaml_ng::from_str(text)?;
        let (host, entries) = match file {
            FleetFile::List(v) => (default_host, v),
            FleetFile::Doc { host, engines } => (host.unwrap_or(default_host), engines),
        };
        let mut engines = Vec::new();
        for e in entries {
            if e.replicas == 0 {
                anyhow::bail!("engine `{}`: replicas must be at least 1", e.name);
            }
            for r in 0..e.replicas {
                let name = if e.replicas > 1 {
                    format!("{}-{r}", e.name)
                } else {
                    e.name.clone()
                };
                let mut spec = EngineSpec::new(name, &e.hardware, &e.model);
                spec.surface = e.surface;
                spec.served_model_names = e.served_model_names.clone();
                spec.seed = e.seed.wrapping_add(u64::from(r));
                spec.speedup = e.speedup;
                spec.faults = e.faults.clone();
                spec.tuning = e.tuning.clone();
                let port = match e.port {
                    Some(p) if p > 0 => p
                        .checked_add(r as u16)
                        .ok_or_else(|| anyhow::anyhow!("engine `{}`: port overflow", e.name))?,
                    _ => 0,
                };
                engines.push((spec, SocketAddr::new(host, port)));
            }
        }
        if engines.is_empty() {
            anyhow::bail!("the fleet file lists no engines");
        }
        Ok(Fleet { engines })
    }

    /// Starts every engine; stops those already started if one fails.
    pub async fn spawn(&self) -> anyhow::Result<Vec<EngineHandle>> {
        let mut handles = Vec::new();
        for (spec, addr) in &self.engines {
            match crate::spawn(spec.clone(), *addr).await {
                Ok(h) => handles.push(h),
                Err(e) => {
                    for h in handles {
                        h.shutdown().await;
                    }
                    return Err(e.context(format!("starting engine `{}` on {addr}", spec.name)));
                }
            }
        }
        Ok(handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_documents_with_replicas() {
        let host: IpAddr = [127, 0, 0, 1].into();
        let f = Fleet::parse(
            "- {name: a, hardware: h100, model: llama-3-8b, port: 9000, replicas: 2, seed: 5}\n- {name: b, hardware: l4, model: llama-3.2-1b, surface: tgi}\n",
            host,
        )
        .expect("parse");
        let names: Vec<_> = f
            .engines
            .iter()
            .map(|(s, a)| (s.name.clone(), a.port(), s.seed))
            .collect();
        assert_eq!(
            names,
            vec![("a-0".into(), 9000, 5), ("a-1".into(), 9001, 6), ("b".into(), 0, 0)]
        );
        assert_eq!(f.engines[2].0.surface, Surface::Tgi);
        let d = Fleet::parse(
            "host: 0.0.0.0\nengines:\n  - {name: x, hardware: cpu, model: tiny, faults: {error_rate: 0.5}}\n",
            host,
        )
        .expect("doc");
        assert_eq!(d.engines[0].1.ip().to_string(), "0.0.0.0");
        assert_eq!(d.engines[0].0.faults.error_rate, 0.5);
        assert!(Fleet::parse("- {name: x, hardware: cpu, model: tiny, bogus: 1}\n", host).is_err());
        assert!(Fleet::parse("[]", host).is_err());
    }

    #[test]
    fn the_example_fleet_parses_and_every_engine_builds() {
        let f = Fleet::parse(include_str!("../../../examples/sim-fleet.yaml"), [127, 0, 0, 1].into()).expect("example");
        assert_eq!(f.engines.len(), 6);
        for (spec, _) in &f.engines {
            let state = crate::server::build_config(spec);
            assert!(state.is_ok(), "{}: {:?}", spec.name, state.err());
        }
    }
}
