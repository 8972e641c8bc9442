//! The deployment profile assignment engine's benchmark: a tenant of `--devices` Autopilot
//! devices (each with its Entra object), `--members` of them (group tag `Bench`) selected by a
//! dynamic group's rule `[OrderId]:Bench`, a profile assigned to that group, and the server's
//! work timed: the group's membership evaluation, then the engine's two passes (the first finds
//! the members and marks them `pending`, the second, scheduled by the first and due after the
//! assignment delay, assigns them).
//!
//! It runs the store in this process, on the database `--db` names (a fresh SQLite file by
//! default), because the evaluation and each pass are one store call and nothing else: their
//! time is the server's time for them, without HTTP in the way. Groups, profiles and the
//! assignment are written through the same store calls the server's handlers make.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use time::OffsetDateTime;

use dmsync_bench::report::{Figure, figure, render, secs};
use dmsync_bench::workload::hardware_hash;
use dmsync_core::autopilot::{DeviceField, NewRegistration};
use dmsync_core::deployment_profiles::{AssignmentTarget, ProfileContent, ProfileKind, ProfileSettings};
use dmsync_core::groups::{DYNAMIC_MEMBERSHIP, EvaluationStats, Group, MemberChange};
use dmsync_core::identity::Tenant;
use dmsync_core::jobs::{JobPayload, NewJob};
use dmsync_core::profile_assignment::{ForcedAssignmentFailures, ProfileAssignmentStats};
use dmsync_core::store::{
    AutopilotStore, DeploymentProfileStore, GroupStore, IdentityStore, JobStore, ProfileAssignmentStore, SystemStore,
};
use dmsync_core::{GroupId, TenantId};
use dmsync_store::SqlStore;

#[derive(Parser)]
#[command(
    name = "dmsync-bench-assignment",
    about = "Benchmark of the Autopilot deployment profile assignment engine",
    args_override_self = true
)]
struct Args {
    /// Autopilot devices in the tenant.
    #[arg(long, default_value_t = 1_000_000)]
    devices: u64,
    /// Devices in the assigned group (every n-th device, n = devices / members).
    #[arg(long, default_value_t = 100_000)]
    members: u64,
    /// The database: a `postgres://` URL, or empty for a fresh SQLite file.
    #[arg(long, default_value = "")]
    db: String,
    /// Accepted for scripts/bench.sh, which passes them to every benchmark; unused, as this one
    /// runs the store in-process.
    #[arg(long)]
    server: Option<String>,
    #[arg(long)]
    server_log: Option<String>,
}

/// The engine's job, as the server enqueues it (`assignDeploymentProfiles`).
#[derive(serde::Serialize, serde::Deserialize)]
struct AssignDeploymentProfiles {}
impl JobPayload for AssignDeploymentProfiles {
    const KIND: &'static str = "assignDeploymentProfiles";
}

/// The membership evaluation, as the server enqueues it (`evaluateGroupMembership`).
#[derive(serde::Serialize, serde::Deserialize)]
struct EvaluateGroupMembership {}
impl JobPayload for EvaluateGroupMembership {
    const KIND: &'static str = "evaluateGroupMembership";
}

/// The rule the group's members follow, as admins write it for a group tag.
const RULE: &str = r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:Bench"))"#;

const TENANT: TenantId = TenantId::from_uuid(uuid_literal());
const DELAY: time::Duration = time::Duration::minutes(15);
const BATCH: u64 = 50_000;
const TAG: &str = "Bench";

const fn uuid_literal() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x5e5e5e5e_5e5e_4e5e_8e5e_5e5e5e5e5e5e)
}

fn main() {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("\nbenchmark FAILED: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    ensure!(args.members >= 1 && args.members <= args.devices, "--members must be in 1..=--devices");
    let dir = tempfile::tempdir()?;
    let (url, backend) = if args.db.is_empty() {
        (format!("sqlite://{}", dir.path().join("assignment.db").display()), "SQLite")
    } else {
        (args.db.clone(), "PostgreSQL")
    };
    let store = SqlStore::open(&url).await.context("opening the database")?;
    let now = OffsetDateTime::now_utc();
    store.create_tenant(&Tenant { id: TENANT, domain: "bench.onmicrosoft.com".into() }, now).await?;

    let started = Instant::now();
    register(&store, args.devices, args.devices / args.members, now).await?;
    store.reconcile_autopilot_devices(TENANT, now).await?;
    let setup = started.elapsed();
    eprintln!("{} devices synced in {}", args.devices, secs(setup));

    let (group, evaluation_time, evaluated) = dynamic_group(&store, now).await?;
    let members = evaluated.added;
    ensure!(members == args.members, "the rule selected {members} devices, not {}", args.members);
    let content = ProfileContent {
        kind: ProfileKind::AzureAd,
        display_name: "Bench".into(),
        settings: ProfileSettings::default(),
    };
    let profile = store.create_deployment_profile(TENANT, &content, now).await?.map_err(refused)?;
    store.create_profile_assignment(TENANT, profile.id, AssignmentTarget::Group(group), now).await?.map_err(refused)?;

    // The assignment's creation asks for a pass; the worker claims it and runs it.
    let job = NewJob::new(&AssignDeploymentProfiles {});
    store.enqueue_coalesced_job(TENANT, &job, now, now).await?;
    let (first, first_time) = pass(&store, now, &job).await?;
    ensure!(first.pending == members, "the first pass marked {} pending, not {members}", first.pending);
    let due = first.next_pass_at.context("the first pass scheduled no second")?;
    let (second, second_time) = pass(&store, due, &job).await?;
    ensure!(second.assigned == members, "the second pass assigned {}, not {members}", second.assigned);
    let assigned = count_assigned(&store).await?;
    ensure!(assigned == members, "{assigned} devices read assigned, not {members}");
    store.enqueue_coalesced_job(TENANT, &job, due, due).await?;
    let (idle, idle_time) = pass(&store, due, &job).await?;
    ensure!(idle == ProfileAssignmentStats::default(), "a pass over unchanged data changed {idle:?}");

    let target = if backend == "SQLite" { 10.0 } else { 30.0 };
    let total = first_time + second_time;
    let with_evaluation = evaluation_time + total;
    let figures: Vec<Figure> = vec![
        figure(
            format!("engine: {members} of {} devices to assigned* ({backend})", args.devices),
            secs(total),
            format!("≤ {target} s"),
            Some(total.as_secs_f64() <= target),
        ),
        figure(
            format!("with the membership evaluation before it ({backend})"),
            secs(with_evaluation),
            format!("≤ {target} s"),
            Some(with_evaluation.as_secs_f64() <= target),
        ),
        figure(format!("membership evaluation: rule selects {members}"), secs(evaluation_time), "—", None),
        figure("first pass: scope → pending", secs(first_time), "—", None),
        figure("second pass: pending → assigned (after the delay)", secs(second_time), "—", None),
        figure("pass over unchanged data", secs(idle_time), "—", None),
    ];
    let notes = vec![
        format!("setup (registrations and sync of {} devices): {}", args.devices, secs(setup)),
        format!("load average at the end: {}", load_average()),
    ];
    println!("# Profile assignment engine ({backend})\n{}", render(&figures, &[], &notes));
    store.close().await;
    Ok(())
}

/// Registers `devices` devices in batches; every `every`-th one has the group tag `Bench`.
async fn register(store: &SqlStore, devices: u64, every: u64, now: OffsetDateTime) -> Result<()> {
    let mut upload = store.begin_registrations(TENANT).await?;
    let mut start = 0;
    while start < devices {
        let rows: Vec<(u64, NewRegistration)> = (start..(start + BATCH).min(devices))
            .map(|i| {
                let row = NewRegistration {
                    serial_number: format!("AS-{i:07}"),
                    hardware_hash: hardware_hash(0xC3, i).to_vec(),
                    manufacturer: "Contoso".into(),
                    model: "M1".into(),
                    group_tag: if i % every == 0 { TAG.into() } else { "Fleet".into() },
                    purchase_order_identifier: String::new(),
                    product_key: String::new(),
                };
                (i + 1, row)
            })
            .collect();
        upload.stage(&rows).await?;
        start += BATCH;
    }
    match upload.commit(now).await? {
        Ok(_) => Ok(()),
        Err(refused) => anyhow::bail!("{} registrations refused", refused.len()),
    }
}

/// Creates the dynamic group as `POST /groups` does (which enqueues its evaluation), then claims
/// and runs that evaluation at its due time; the group, the evaluation's time and its figures.
async fn dynamic_group(store: &SqlStore, now: OffsetDateTime) -> Result<(GroupId, Duration, EvaluationStats)> {
    let mut group = Group {
        tenant_id: TENANT,
        id: GroupId::new(),
        display_name: "Bench devices".into(),
        description: None,
        mail_nickname: "bench-devices".into(),
        mail_enabled: false,
        security_enabled: true,
        group_types: vec![DYNAMIC_MEMBERSHIP.into()],
        membership_rule: Some(RULE.into()),
        processing_state: None,
        created_at: now,
    };
    group.validate().map_err(|invalid| anyhow::anyhow!("the rule is refused: {invalid:?}"))?;
    let created = store.create_group(&group, &[], now, now, &NewJob::new(&EvaluateGroupMembership {})).await?;
    ensure!(created == MemberChange::Done, "the group was refused: {created:?}");
    let started = Instant::now();
    let claimed = store.claim_job("bench", now, now, time::Duration::minutes(5)).await?.context("no evaluation")?;
    ensure!(claimed.kind == EvaluateGroupMembership::KIND, "claimed {} instead of the evaluation", claimed.kind);
    let stats = store.evaluate_group_membership(&claimed.lease(), TENANT, now).await?.context("the lease was lost")?;
    Ok((group.id, started.elapsed(), stats))
}

fn refused(refusal: dmsync_core::deployment_profiles::ProfileRefusal) -> anyhow::Error {
    anyhow::anyhow!("refused: {refusal:?}")
}

/// Claims the pass due at `now` and runs it, as the worker would; its stats and its time.
async fn pass(store: &SqlStore, now: OffsetDateTime, job: &NewJob) -> Result<(ProfileAssignmentStats, Duration)> {
    let started = Instant::now();
    let claimed = store.claim_job("bench", now, now, time::Duration::minutes(5)).await?.context("no pass was due")?;
    let stats = store
        .assign_deployment_profiles(&claimed.lease(), TENANT, now, DELAY, job, &ForcedAssignmentFailures::Nothing)
        .await?
        .context("the lease was lost")?;
    Ok((stats, started.elapsed()))
}

async fn count_assigned(store: &SqlStore) -> Result<u64> {
    let filter =
        dmsync_core::filter::parse_filter("deploymentProfileAssignmentStatus eq 'assignedUnkownSyncState'", |_| {
            Some(DeviceField::DeploymentProfileAssignmentStatus)
        })
        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
    Ok(store.count_autopilot_devices(TENANT, Some(&filter)).await?)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
