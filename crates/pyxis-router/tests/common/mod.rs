//! Owned endpoint fixtures for the router's tests (views borrow from them).

#![allow(dead_code)]

use pyxis_router::{EndpointView, LoadSignal, RouteRequest};

#[derive(Debug, Clone)]
pub struct Ep {
    pub key: String,
    pub healthy: bool,
    pub hardware: String,
    pub region: Option<String>,
    pub memory_gib: f64,
    pub in_flight: u32,
    pub load: Option<LoadSignal>,
    pub price: Option<f64>,
    pub adapters: Vec<String>,
}

pub fn ep(i: usize) -> Ep {
    Ep {
        key: format!("http://ep{i}:8000"),
        healthy: true,
        hardware: "h100".into(),
        region: Some("eu".into()),
        memory_gib: 80.0,
        in_flight: 0,
        load: None,
        price: None,
        adapters: Vec::new(),
    }
}

pub fn eps(n: usize) -> Vec<Ep> {
    (0..n).map(ep).collect()
}

pub fn views(eps: &[Ep]) -> Vec<EndpointView<'_>> {
    eps.iter()
        .map(|e| EndpointView {
            key: &e.key,
            healthy: e.healthy,
            hardware: &e.hardware,
            region: e.region.as_deref(),
            memory_gib: e.memory_gib,
            in_flight: e.in_flight,
            load: e.load,
            price_per_mtok: e.price,
            adapters: &e.adapters,
        })
        .collect()
}

pub fn req(blocks: &[u64]) -> RouteRequest<'_> {
    RouteRequest {
        model_weights_gib: 15.0,
        prompt_tokens: 2000,
        prefix_blocks: blocks,
        ..RouteRequest::default()
    }
}
