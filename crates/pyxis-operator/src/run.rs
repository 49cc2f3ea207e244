//! `pyxis operator`: its flags and the controller loop that drives [`crate::reconcile`].

use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, info, warn};

use crate::catalog::Images;
use crate::crd::{self, ModelDeployment};
use crate::reconcile::{Context, error_policy, reconcile};
use crate::workload::{BuildOptions, MANAGER};

/// Whether to label workloads for Kueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KueueMode {
    /// When the cluster serves the `kueue.x-k8s.io` API group.
    Auto,
    On,
    Off,
}

/// Flags of `pyxis operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Namespace to watch and deploy into (default: the pod's own in a cluster, else the kubeconfig context's).
    #[arg(long, env = "PYXIS_NAMESPACE")]
    pub namespace: Option<String>,
    /// Label workloads with the tenant's Kueue queue (`kueue.x-k8s.io/queue-name`).
    #[arg(long, env = "PYXIS_KUEUE", value_enum, default_value = "auto")]
    pub kueue: KueueMode,
    /// Image of a runtime kind, for all vendors (`vllm=IMAGE`) or one (`vllm/amd=IMAGE`); repeatable.
    #[arg(long = "image", value_name = "KIND[/VENDOR]=IMAGE")]
    pub images: Vec<String>,
    /// Node label whose value is the accelerator class; pods select nodes with `LABEL=<class>`.
    #[arg(long, env = "PYXIS_ACCELERATOR_LABEL", default_value = "pyxis.dev/accelerator")]
    pub accelerator_label: String,
    /// Secret (key `token`) passed to the runtimes as `HF_TOKEN` when it exists; empty: none.
    #[arg(long, env = "PYXIS_HF_TOKEN_SECRET", default_value = "hf-token")]
    pub hf_token_secret: String,
}

impl OperatorArgs {
    /// The builder options these flags describe.
    pub fn build_options(&self) -> anyhow::Result<BuildOptions> {
        Ok(BuildOptions {
            images: Images::parse(&self.images).map_err(anyhow::Error::msg)?,
            accelerator_label: self.accelerator_label.clone(),
            hf_token_secret: Some(self.hf_token_secret.clone()).filter(|s| !s.is_empty()),
        })
    }
}

/// Whether the cluster serves Kueue's API group (discovery is readable by every authenticated user).
pub async fn kueue_installed(client: &Client) -> Result<bool, kube::Error> {
    let groups = client.list_api_groups().await?;
    Ok(groups.groups.iter().any(|g| g.name == "kueue.x-k8s.io"))
}

/// The deployments in `store` that `pred` selects, as controller triggers.
fn select(store: &Store<ModelDeployment>, pred: impl Fn(&ModelDeployment) -> bool) -> Vec<ObjectRef<ModelDeployment>> {
    store
        .state()
        .iter()
        .filter(|d| pred(d))
        .map(|d| ObjectRef::from(&**d))
        .collect()
}

/// Runs the operator until SIGINT or SIGTERM.
pub async fn run_operator(args: OperatorArgs) -> anyhow::Result<()> {
    let options = args.build_options()?;
    let client = Client::try_default().await.context("cannot reach the Kubernetes API")?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let kueue = match args.kueue {
        KueueMode::On => true,
        KueueMode::Off => false,
        KueueMode::Auto => kueue_installed(&client)
            .await
            .context("cannot list the cluster's API groups")?,
    };
    let mds: Api<ModelDeployment> = Api::namespaced(client.clone(), &ns);
    mds.list(&ListParams::default().limit(1))
        .await
        .context("cannot list ModelDeployments: are the CRDs installed (`pyxis crd | kubectl apply -f -`)?")?;
    info!(namespace = %ns, kueue, "operator started");

    let owned = watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let controller = Controller::new(mds.clone(), watcher::Config::default());
    let store = controller.store();
    let (by_tenant, by_model, siblings) = (store.clone(), store.clone(), store);
    let ctx = Arc::new(Context::new(client.clone(), options, kueue));
    controller
        .owns(Api::<Deployment>::namespaced(client.clone(), &ns), owned.clone())
        .owns(Api::<Service>::namespaced(client.clone(), &ns), owned)
        // A quota or queue change re-decides every deployment of the tenant.
        .watches(
            Api::<crd::Tenant>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            move |t| {
                let name = t.name_any();
                select(&by_tenant, |d| d.spec.tenant.as_deref() == Some(name.as_str()))
            },
        )
        .watches(
            Api::<crd::Model>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            move |m| {
                let name = m.name_any();
                select(&by_model, |d| d.spec.model == name)
            },
        )
        // A deployment that grows, shrinks or goes changes what its tenant's other deployments may hold.
        .watches(mds, watcher::Config::default(), move |md| {
            let tenant = md.spec.tenant.clone();
            let me = md.name_any();
            select(&siblings, |d| {
                tenant.is_some() && d.spec.tenant == tenant && d.name_any() != me
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(deployment = %obj.name, "reconciled"),
                Err(e) => warn!(error = %e, "reconcile loop"),
            }
        })
        .await;
    info!("operator stopped");
    Ok(())
}
