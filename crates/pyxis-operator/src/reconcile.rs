//! Reconciles one ModelDeployment into its Deployment, Service and cache claim (server-side apply, one field
//! manager, owner references, a finalizer), checks the tenant's accelerator quota, and writes status and events.
//!
//! Level-triggered: every run reads the current state and applies the whole desired state, so running it twice
//! changes nothing the second time (the status is only written when it differs).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::catalog::{NoRuntime, choose};
use crate::conditions::{Outcome, conditions};
use crate::crd::{self, ModelDeployment, ModelDeploymentStatus, QuotaStatus};
use crate::error::Error;
use crate::quota::{Claim, decide};
use crate::workload::{BuildOptions, MANAGER, Target, build, cache_claim_name};

/// The finalizer the operator puts on every ModelDeployment, so a deletion updates the tenant's usage first.
pub const FINALIZER: &str = "pyxis.dev/finalizer";

/// Returns the current time as RFC 3339; injected so tests get fixed condition times.
pub type Clock = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub options: BuildOptions,
    /// Label workloads with the tenant's Kueue queue.
    pub kueue: bool,
    recorder: Recorder,
    clock: Clock,
    /// Consecutive failures per `namespace/name`, for the back-off; cleared by a success.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, options: BuildOptions, kueue: bool) -> Context {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            options,
            kueue,
            clock: Arc::new(|| {
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or_default()
                    .to_string()
            }),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The same context reading time from `clock`.
    pub fn with_clock(self, clock: Clock) -> Context {
        Context { clock, ..self }
    }

    fn failed(&self, key: &str) -> u32 {
        let Ok(mut f) = self.failures.lock() else { return 1 };
        let n = f.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }
}

fn key(md: &ModelDeployment) -> String {
    format!("{}/{}", md.namespace().unwrap_or_default(), md.name_any())
}

/// The controller's reconcile function.
pub async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = md.namespace().ok_or_else(|| Error::NoNamespace(md.name_any()))?;
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let key = key(&md);
    let result = finalizer(&api, FINALIZER, md, |event| {
        let ctx = ctx.clone();
        async move {
            match event {
                Finalizer::Apply(md) => apply(&md, &ctx).await,
                Finalizer::Cleanup(md) => cleanup(&md, &ctx).await,
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// Retry delay after `failures` consecutive failures: 5 s doubling to at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs((5u64 << exp).min(300))
}

/// The controller's error policy: requeue with exponential back-off per object.
pub fn error_policy(md: Arc<ModelDeployment>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = key(&md);
    let delay = backoff(ctx.failed(&key));
    warn!(deployment = %key, error = %err, kind = err.label(), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// What the status carries besides the conditions.
#[derive(Default)]
struct Facts {
    runtime: Option<String>,
    image: Option<String>,
    service: Option<String>,
    ready: u32,
    quota: Option<QuotaStatus>,
}

fn blocked(reason: &str, message: String) -> Outcome {
    Outcome::Blocked {
        reason: reason.into(),
        message,
    }
}

async fn apply(md: &ModelDeployment, ctx: &Context) -> Result<Action, Error> {
    let ns = md.namespace().unwrap_or_default();
    let name = md.name_any();
    let spec = &md.spec.0;
    let client = ctx.client.clone();

    let model = Api::<crd::Model>::namespaced(client.clone(), &ns)
        .get_opt(&spec.model)
        .await?;
    let Some(model) = model else {
        let msg = format!("no Model {:?} in namespace {ns}", spec.model);
        return finish(md, ctx, blocked("ModelNotFound", msg), Facts::default()).await;
    };
    let tenant = match &spec.tenant {
        None => None,
        Some(t) => match Api::<crd::Tenant>::namespaced(client.clone(), &ns).get_opt(t).await? {
            Some(t) => Some(t),
            None => {
                let msg = format!("no Tenant {t:?} in namespace {ns}");
                return finish(md, ctx, blocked("TenantNotFound", msg), Facts::default()).await;
            }
        },
    };
    let served = model.spec.served_name.clone().unwrap_or_else(|| spec.model.clone());
    let source = spec.source.clone().unwrap_or_else(|| served.clone());
    let class = spec.accelerator.r#type.as_str();
    let has_image = spec.image.is_some();
    let kind = match choose(
        spec.runtime,
        spec.fallback.as_deref(),
        class,
        &source,
        has_image,
        &ctx.options.images,
    ) {
        Ok(k) => k,
        Err(NoRuntime(msg)) => return finish(md, ctx, blocked("NoRuntime", msg), Facts::default()).await,
    };

    let mut facts = Facts::default();
    if let Some(tenant) = &tenant {
        let (quota, admitted) = check_quota(md, tenant, ctx).await?;
        let msg = format!(
            "tenant {:?} may hold {} {class} accelerators; {} are held by older deployments and this one asks for {}",
            quota.tenant,
            quota.limit.unwrap_or_default(),
            quota.used,
            quota.requested
        );
        facts.quota = Some(quota);
        if !admitted {
            remove_workload(&client, &ns, &name).await?;
            return finish(md, ctx, blocked("QuotaExceeded", msg), facts).await;
        }
    }

    let queue = tenant
        .as_ref()
        .filter(|_| ctx.kueue)
        .and_then(|t| t.spec.kueue_queue.as_deref());
    let target = Target {
        name: &name,
        namespace: &ns,
        spec,
        served_name: &served,
        context_length: model.spec.context_length,
        kind,
        kueue_queue: queue,
        owner: md.controller_owner_ref(&()),
    };
    let workload = match build(&target, &ctx.options) {
        Ok(w) => w,
        Err(NoRuntime(msg)) => return finish(md, ctx, blocked("NoRuntime", msg), facts).await,
    };
    let pp = PatchParams::apply(MANAGER).force();
    if let Some(pvc) = &workload.cache {
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
            .patch(&cache_claim_name(&name), &pp, &Patch::Apply(pvc))
            .await?;
    }
    let applied = Api::<Deployment>::namespaced(client.clone(), &ns)
        .patch(&name, &pp, &Patch::Apply(&workload.deployment))
        .await?;
    Api::<Service>::namespaced(client, &ns)
        .patch(&name, &pp, &Patch::Apply(&workload.service))
        .await?;

    let st = applied.status.unwrap_or_default();
    let ready = u32::try_from(st.ready_replicas.unwrap_or(0)).unwrap_or(0);
    let updated = u32::try_from(st.updated_replicas.unwrap_or(0)).unwrap_or(0);
    let rolling = st.observed_generation < applied.metadata.generation || updated < spec.replicas;
    facts.runtime = Some(kind.as_str().into());
    facts.image = Some(workload.image);
    facts.service = Some(name.clone());
    facts.ready = ready;
    let outcome = Outcome::Applied {
        ready,
        desired: spec.replicas,
        rolling,
    };
    finish(md, ctx, outcome, facts).await
}

/// The claims of every live ModelDeployment of the namespace, `md`'s from its current spec.
async fn claims(md: &ModelDeployment, ctx: &Context, include_self: bool) -> Result<Vec<Claim>, Error> {
    let ns = md.namespace().unwrap_or_default();
    let list = Api::<ModelDeployment>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let claim = |d: &ModelDeployment| Claim {
        name: d.name_any(),
        created: d.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()),
        tenant: d.spec.tenant.clone(),
        class: d.spec.accelerator.r#type.clone(),
        accelerators: d.spec.replicas.saturating_mul(d.spec.accelerator.count),
    };
    let me = md.name_any();
    let mut out: Vec<Claim> = list
        .items
        .iter()
        .filter(|d| d.metadata.deletion_timestamp.is_none() && d.name_any() != me)
        .map(claim)
        .collect();
    if include_self {
        out.push(claim(md));
    }
    Ok(out)
}

/// Decides `md`'s quota and writes the tenant's usage into the tenant's status.
async fn check_quota(md: &ModelDeployment, tenant: &crd::Tenant, ctx: &Context) -> Result<(QuotaStatus, bool), Error> {
    let claims = claims(md, ctx, true).await?;
    let tname = tenant.name_any();
    let (d, usage) = decide(&md.name_any(), &tname, &claims, tenant.spec.accelerator_quota.as_ref());
    write_tenant_usage(tenant, usage, ctx).await?;
    let requested = md.spec.replicas.saturating_mul(md.spec.accelerator.count);
    let quota = QuotaStatus {
        tenant: tname,
        class: md.spec.accelerator.r#type.clone(),
        requested,
        used: d.used,
        limit: d.limit,
    };
    Ok((quota, d.admitted))
}

async fn write_tenant_usage(tenant: &crd::Tenant, usage: BTreeMap<String, u32>, ctx: &Context) -> Result<(), Error> {
    let current = tenant.status.as_ref().map(|s| &s.accelerator_usage);
    if current == Some(&usage) || (current.is_none() && usage.is_empty()) {
        return Ok(());
    }
    let status = crd::TenantStatus {
        accelerator_usage: usage,
    };
    let body = json!({ "apiVersion": pyxis_resources::API_VERSION, "kind": "Tenant", "status": status });
    Api::<crd::Tenant>::namespaced(ctx.client.clone(), &tenant.namespace().unwrap_or_default())
        .patch_status(
            &tenant.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(body),
        )
        .await?;
    Ok(())
}

/// Deletes the Deployment and Service of an over-quota deployment; the cache claim stays, with its weights.
async fn remove_workload(client: &Client, ns: &str, name: &str) -> Result<(), Error> {
    let dp = DeleteParams::default();
    gone(
        Api::<Deployment>::namespaced(client.clone(), ns)
            .delete(name, &dp)
            .await,
    )?;
    gone(Api::<Service>::namespaced(client.clone(), ns).delete(name, &dp).await)
}

/// A deletion's result, with "already gone" as success.
fn gone<T>(r: Result<T, kube::Error>) -> Result<(), Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

/// Writes the status (when it changed), publishes events for the conditions that changed, and picks the requeue.
async fn finish(md: &ModelDeployment, ctx: &Context, outcome: Outcome, facts: Facts) -> Result<Action, Error> {
    let old = md.status.clone().unwrap_or_default();
    let generation = md.metadata.generation;
    let status = ModelDeploymentStatus {
        observed_generation: generation,
        runtime: facts.runtime,
        image: facts.image,
        service: facts.service,
        replicas: md.spec.replicas,
        ready_replicas: facts.ready,
        quota: facts.quota,
        conditions: conditions(&outcome, generation, &old.conditions, &(ctx.clock)()),
    };
    if status != old {
        let body = json!({ "apiVersion": pyxis_resources::API_VERSION, "kind": "ModelDeployment", "status": status });
        Api::<ModelDeployment>::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default())
            .patch_status(
                &md.name_any(),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(body),
            )
            .await?;
    }
    for ev in events(&old, &status) {
        // Events are best effort: a refused event must not fail (and so retry) a reconcile that did its work.
        if let Err(e) = ctx.recorder.publish(&ev, &md.object_ref(&())).await {
            warn!(deployment = %key(md), error = %e, "cannot publish an event");
        }
    }
    Ok(match outcome {
        Outcome::Blocked { .. } => Action::requeue(Duration::from_secs(60)),
        Outcome::Applied { ready, desired, .. } if ready >= desired => Action::requeue(Duration::from_secs(300)),
        Outcome::Applied { .. } => Action::requeue(Duration::from_secs(30)),
    })
}

/// Events for what changed between two statuses: newly degraded (or degraded for a new reason), newly ready, and
/// a new generation applied.
fn events(old: &ModelDeploymentStatus, new: &ModelDeploymentStatus) -> Vec<Event> {
    let mut out = Vec::new();
    let changed = |ty: &str| {
        let (o, n) = (old.condition(ty), new.condition(ty));
        n.filter(|n| n.status == "True" && o.is_none_or(|o| o.status != "True" || o.reason != n.reason))
    };
    if let Some(c) = changed("Degraded") {
        out.push(Event {
            type_: EventType::Warning,
            reason: c.reason.clone(),
            note: Some(c.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    if new.runtime.is_some() && new.observed_generation != old.observed_generation {
        out.push(Event {
            type_: EventType::Normal,
            reason: "Applied".into(),
            note: Some(format!(
                "Deployment and Service applied: {} ({})",
                new.runtime.as_deref().unwrap_or_default(),
                new.image.as_deref().unwrap_or_default()
            )),
            action: "Apply".into(),
            secondary: None,
        });
    }
    if let Some(c) = changed("Ready") {
        out.push(Event {
            type_: EventType::Normal,
            reason: "Ready".into(),
            note: Some(c.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    out
}

/// On deletion: the tenant's usage no longer counts this deployment. Owned objects go by garbage collection.
async fn cleanup(md: &ModelDeployment, ctx: &Context) -> Result<Action, Error> {
    if let Some(t) = &md.spec.tenant {
        let ns = md.namespace().unwrap_or_default();
        if let Some(tenant) = Api::<crd::Tenant>::namespaced(ctx.client.clone(), &ns)
            .get_opt(t)
            .await?
        {
            let claims = claims(md, ctx, false).await?;
            let (_, usage) = decide("", t, &claims, tenant.spec.accelerator_quota.as_ref());
            write_tenant_usage(&tenant, usage, ctx).await?;
        }
    }
    info!(deployment = %key(md), "deleted");
    Ok(Action::await_change())
}
