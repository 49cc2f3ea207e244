//! Builds the Deployment, Service and cache PersistentVolumeClaim of a ModelDeployment: pure, no API calls.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretKeySelector, Service, ServicePort, ServiceSpec, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pyxis_resources::{ModelDeploymentSpec, RuntimeKind};

use crate::catalog::{Images, NoRuntime, Vendor, profile, vendor};
use crate::launch::{CACHE_DIR, LaunchCx, Warm, launch};

/// The field manager of every server-side apply, and the `app.kubernetes.io/managed-by` value.
pub const MANAGER: &str = "pyxis-operator";
/// Label on every object made for a ModelDeployment (its name); the pod selector of its Deployment and Service.
pub const DEPLOYMENT_LABEL: &str = "pyxis.dev/model-deployment";
/// Kueue's queue label.
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The name of the server's HTTP port, in the pod and in the Service.
pub const HTTP_PORT_NAME: &str = "http";

/// Cluster-wide settings of the builder (operator flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    pub images: Images,
    /// Node label whose value is the accelerator class (`nodeSelector: {KEY: h100}`).
    pub accelerator_label: String,
    /// Secret with the Hugging Face token (key `token`), mounted optionally as `HF_TOKEN`.
    pub hf_token_secret: Option<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            images: Images::default(),
            accelerator_label: "pyxis.dev/accelerator".into(),
            hf_token_secret: Some("hf-token".into()),
        }
    }
}

/// One ModelDeployment, resolved: its model, chosen kind and tenant queue.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a ModelDeploymentSpec,
    /// The model's `servedName` (or name): what clients send and the server is told to answer to.
    pub served_name: &'a str,
    pub context_length: u32,
    pub kind: RuntimeKind,
    /// The tenant's Kueue queue, when Kueue is on and the tenant has one.
    pub kueue_queue: Option<&'a str>,
    pub owner: Option<OwnerReference>,
}

/// The objects of one ModelDeployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub deployment: Deployment,
    pub service: Service,
    /// Present when `spec.cache` asks for a persistent volume.
    pub cache: Option<PersistentVolumeClaim>,
    pub image: String,
}

impl Target<'_> {
    /// The weights to load: `spec.source`, else the model's served name.
    pub fn source(&self) -> &str {
        self.spec.source.as_deref().unwrap_or(self.served_name)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.spec.port.or(profile(self.kind).map(|p| p.port)).unwrap_or(8000)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), self.kind.as_str().to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.to_string()),
            ("app.kubernetes.io/component".to_string(), "model-server".to_string()),
            ("app.kubernetes.io/managed-by".to_string(), MANAGER.to_string()),
            (DEPLOYMENT_LABEL.to_string(), self.name.to_string()),
            ("pyxis.dev/model".to_string(), self.spec.model.clone()),
            ("pyxis.dev/runtime".to_string(), self.kind.as_str().to_string()),
            (
                "pyxis.dev/accelerator".to_string(),
                self.spec.accelerator.r#type.clone(),
            ),
        ]);
        if let Some(t) = &self.spec.tenant {
            l.insert("pyxis.dev/tenant".into(), t.clone());
        }
        if let Some(q) = self.kueue_queue {
            l.insert(KUEUE_QUEUE_LABEL.into(), q.to_string());
        }
        l
    }

    fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_string()),
            labels: Some(self.labels()),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

/// The name of the cache claim of deployment `name`.
pub fn cache_claim_name(name: &str) -> String {
    format!("{name}-cache")
}

/// Builds the workload of `t`. Fails only when the kind has no image for the class and `spec.image` is unset.
pub fn build(t: &Target<'_>, opts: &BuildOptions) -> Result<Workload, NoRuntime> {
    let class = t.spec.accelerator.r#type.as_str();
    let vendor = vendor(class);
    let image = match &t.spec.image {
        Some(i) => i.clone(),
        None => opts.images.image(t.kind, vendor).ok_or_else(|| {
            NoRuntime(format!(
                "{} has no image for {vendor} accelerators ({class}); set spec.image",
                t.kind
            ))
        })?,
    };
    let prof = profile(t.kind).ok_or_else(|| NoRuntime(format!("{} is not a deployable runtime", t.kind)))?;
    let port = t.port();
    let l = launch(
        t.kind,
        &LaunchCx {
            source: t.source(),
            served: t.served_name,
            port,
            count: t.spec.accelerator.count,
            context_length: t.context_length,
            vendor,
        },
    );

    let mut env = l.env.clone();
    for (k, v) in &t.spec.env {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    let mut args = l.args.clone();
    args.extend(t.spec.args.iter().cloned());

    let mut ports = vec![container_port(HTTP_PORT_NAME, port)];
    ports.extend(l.extra_ports.iter().map(|(n, p)| container_port(n, *p)));
    let probe = |path: &str, period, failures, timeout| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(HTTP_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(timeout),
        ..Probe::default()
    };
    let mut mounts = vec![VolumeMount {
        name: "model-cache".into(),
        mount_path: CACHE_DIR.into(),
        ..VolumeMount::default()
    }];
    if vendor != Vendor::Cpu {
        // NCCL and the runtimes' worker processes share tensors through /dev/shm; the default 64 MiB is too small.
        mounts.push(VolumeMount {
            name: "dshm".into(),
            mount_path: "/dev/shm".into(),
            ..VolumeMount::default()
        });
    }
    let server = Container {
        name: "server".into(),
        image: Some(image.clone()),
        command: l.command.clone(),
        args: Some(args),
        env: Some(env_vars(&env, opts)),
        ports: Some(ports),
        resources: Some(resources(vendor, t.spec.accelerator.count)),
        // Loading weights can take many minutes: the startup probe holds liveness off for up to 30 minutes.
        startup_probe: Some(probe(prof.ready_path, 10, 180, 5)),
        readiness_probe: Some(probe(prof.ready_path, 5, 3, 5)),
        liveness_probe: Some(probe(prof.live_path, 15, 4, 10)),
        volume_mounts: Some(mounts.clone()),
        ..Container::default()
    };
    let warm = l.warm.as_ref().map(|w| warm_container(w, &image, &mounts[..1], opts));

    let mut volumes = vec![Volume {
        name: "model-cache".into(),
        empty_dir: t.spec.cache.is_none().then(EmptyDirVolumeSource::default),
        persistent_volume_claim: t.spec.cache.as_ref().map(|_| PersistentVolumeClaimVolumeSource {
            claim_name: cache_claim_name(t.name),
            ..PersistentVolumeClaimVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if vendor != Vendor::Cpu {
        volumes.push(Volume {
            name: "dshm".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let selector = BTreeMap::from([(DEPLOYMENT_LABEL.to_string(), t.name.to_string())]);
    let pod = PodSpec {
        containers: vec![server],
        init_containers: warm.map(|w| vec![w]),
        volumes: Some(volumes),
        node_selector: (vendor != Vendor::Cpu)
            .then(|| BTreeMap::from([(opts.accelerator_label.clone(), class.to_string())])),
        tolerations: tolerations(vendor, class, &opts.accelerator_label),
        // Service links would put e.g. VLLM_PORT=tcp://... into the environment, which vLLM reads as its own.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(60),
        ..PodSpec::default()
    };
    let deployment = Deployment {
        metadata: t.meta(t.name.to_string()),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(t.spec.replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            // No surge: a surge pod would need accelerators beyond the deployment's (and the tenant's) share.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            progress_deadline_seconds: Some(1800),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(t.labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let service = Service {
        metadata: t.meta(t.name.to_string()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(HTTP_PORT_NAME.into()),
                port: i32::from(port),
                target_port: Some(IntOrString::String(HTTP_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    let cache = t.spec.cache.as_ref().map(|c| PersistentVolumeClaim {
        metadata: t.meta(cache_claim_name(t.name)),
        spec: Some(PersistentVolumeClaimSpec {
            // Pods of several replicas land on different nodes and must share the claim.
            access_modes: Some(vec![
                if t.spec.replicas > 1 {
                    "ReadWriteMany"
                } else {
                    "ReadWriteOnce"
                }
                .into(),
            ]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(c.size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: c.storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    });
    Ok(Workload {
        deployment,
        service,
        cache,
        image,
    })
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(port),
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn env_vars(env: &[(String, String)], opts: &BuildOptions) -> Vec<EnvVar> {
    let mut out: Vec<EnvVar> = env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    if let Some(secret) = &opts.hf_token_secret
        && !env.iter().any(|(k, _)| k == "HF_TOKEN")
    {
        out.push(EnvVar {
            name: "HF_TOKEN".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: "token".into(),
                    optional: Some(true),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    out
}

fn warm_container(w: &Warm, image: &str, mounts: &[VolumeMount], opts: &BuildOptions) -> Container {
    Container {
        name: "warm-cache".into(),
        image: Some(image.to_string()),
        command: Some(w.command.clone()),
        env: Some(env_vars(&w.env, opts)),
        volume_mounts: Some(mounts.to_vec()),
        ..Container::default()
    }
}

fn resources(vendor: Vendor, count: u32) -> ResourceRequirements {
    let one = |name: &str| Some(BTreeMap::from([(name.to_string(), Quantity(count.to_string()))]));
    match vendor.gpu_resource() {
        // Extended resources go in limits; requests default to them.
        Some(gpu) => ResourceRequirements {
            limits: one(gpu),
            ..ResourceRequirements::default()
        },
        None => ResourceRequirements {
            requests: one("cpu"),
            ..ResourceRequirements::default()
        },
    }
}

fn tolerations(vendor: Vendor, class: &str, label: &str) -> Option<Vec<Toleration>> {
    let gpu = vendor.gpu_resource()?;
    Some(vec![
        // GPU node pools are commonly tainted with the device plugin's resource name (GKE, AKS, the GPU operator).
        Toleration {
            key: Some(gpu.to_string()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        },
        // Nodes dedicated to one class may be tainted with the class label.
        Toleration {
            key: Some(label.to_string()),
            operator: Some("Equal".into()),
            value: Some(class.to_string()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        },
    ])
}
