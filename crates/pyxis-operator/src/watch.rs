//! The gateway's Kubernetes mode: watches the Pyxis resources and the EndpointSlices of the operator's Services
//! and yields a complete, valid [`Fleet`] each time what they describe changes.

use std::fmt::Debug;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use pyxis_resources::Fleet;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::assemble::{SERVICE_NAME_LABEL, Snapshot, assemble};
use crate::crd;

/// Something happened on watch number `source`; `synced`: its first full list is in its store.
struct Tick {
    source: usize,
    synced: bool,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A reflector of `K` into a store, as a stream of ticks numbered `source`.
fn reflect<K>(api: Api<K>, config: watcher::Config, source: usize) -> (Store<K>, BoxStream<'static, Tick>)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let ticks = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .filter_map(move |ev| {
            futures::future::ready(match ev {
                Ok(watcher::Event::InitDone) => Some(Tick { source, synced: true }),
                Ok(_) => Some(Tick { source, synced: false }),
                Err(e) => {
                    // The back-off retries; the stores keep their last state meanwhile.
                    warn!(error = %e, "Kubernetes watch failed; retrying");
                    None
                }
            })
        })
        .boxed();
    (reader, ticks)
}

fn sorted<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>) -> Vec<K> {
    let mut v: Vec<K> = store.state().iter().map(|k| (**k).clone()).collect();
    v.sort_by(|a, b| (&a.meta().namespace, &a.meta().name).cmp(&(&b.meta().namespace, &b.meta().name)));
    v
}

struct Stores {
    tenants: Store<crd::Tenant>,
    models: Store<crd::Model>,
    runtimes: Store<crd::Runtime>,
    tiers: Store<crd::PriorityTier>,
    policies: Store<crd::RoutingPolicy>,
    deployments: Store<crd::ModelDeployment>,
    slices: Store<EndpointSlice>,
}

impl Stores {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            tenants: sorted(&self.tenants),
            models: sorted(&self.models),
            runtimes: sorted(&self.runtimes),
            priority_tiers: sorted(&self.tiers),
            routing_policies: sorted(&self.policies),
            model_deployments: sorted(&self.deployments),
            endpoint_slices: sorted(&self.slices),
        }
    }
}

/// Watches the Pyxis kinds and EndpointSlices in `namespace` (all namespaces when `None`) and yields the fleet
/// they describe: first once every watch has listed, then after each change that alters the fleet. Watch errors
/// are retried with back-off (logged); the stream only ends when dropped.
pub fn watch_fleet(client: Client, namespace: Option<String>) -> impl Stream<Item = Fleet> + Send + 'static {
    let ns = namespace.as_deref();
    let all = watcher::Config::default;
    let (tenants, t0) = reflect(api(&client, ns), all(), 0);
    let (models, t1) = reflect(api(&client, ns), all(), 1);
    let (runtimes, t2) = reflect(api(&client, ns), all(), 2);
    let (tiers, t3) = reflect(api(&client, ns), all(), 3);
    let (policies, t4) = reflect(api(&client, ns), all(), 4);
    let (deployments, t5) = reflect(api(&client, ns), all(), 5);
    let (slices, t6) = reflect(api(&client, ns), all().labels(SERVICE_NAME_LABEL), 6);
    let stores = Stores {
        tenants,
        models,
        runtimes,
        tiers,
        policies,
        deployments,
        slices,
    };
    let mut synced = [false; 7];
    let mut last: Option<Fleet> = None;
    stream::select_all([t0, t1, t2, t3, t4, t5, t6]).filter_map(move |tick| {
        if let Some(s) = synced.get_mut(tick.source) {
            *s |= tick.synced;
        }
        let next = if synced.iter().all(|s| *s) {
            let fleet = assemble(&stores.snapshot());
            (last.as_ref() != Some(&fleet)).then(|| {
                last = Some(fleet.clone());
                fleet
            })
        } else {
            None
        };
        futures::future::ready(next)
    })
}

/// [`watch_fleet`] with a client from the environment (the pod's service account in a cluster, else the
/// kubeconfig), in `namespace` or else the client's default namespace, for callers that do not depend on kube
/// (`pyxis serve --kubernetes`).
pub async fn kubernetes_fleet(
    namespace: Option<String>,
) -> Result<impl Stream<Item = Fleet> + Send + 'static, crate::Error> {
    let client = Client::try_default().await?;
    let ns = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    Ok(watch_fleet(client, Some(ns)))
}
