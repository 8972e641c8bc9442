//! The deployment profile assignment engine's benchmark: a tenant of `--devices` Autopilot
//! devices (each with its Entra object), `--members` of them in a group that a profile is
//! assigned to, and the engine's two passes timed: the first finds the members and marks them
//! `pending`, the second (scheduled by the first, due after the assignment delay) assigns them.
//!
//! It runs the store in this process, on the database `--db` names (a fresh SQLite file by
//! default), because the engine's pass is a store call and nothing else: its time is the
//! server's time for the pass, without HTTP in the way. The group's members are inserted with
//! one statement standing in for the dynamic rule `[OrderId]:Bench` (see `fill_group`), until
//! the group store's evaluator is here.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use time::OffsetDateTime;

use dmsync_bench::report::{Figure, figure, render, secs};
use dmsync_bench::workload::hardware_hash;
use dmsync_core::autopilot::{DeviceField, NewRegistration};
use dmsync_core::identity::Tenant;
use dmsync_core::jobs::{JobPayload, NewJob};
use dmsync_core::profile_assignment::ProfileAssignmentStats;
use dmsync_core::store::{AutopilotStore, IdentityStore, JobStore, ProfileAssignmentStore, SystemStore};
use dmsync_core::{DeploymentProfileId, GroupId, TenantId};
use dmsync_store::SqlStore;
use dmsync_store::fixtures::{self, Target};

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

    let group = GroupId::now_v7();
    let started = Instant::now();
    let members = fill_group(&store, group, now).await?;
    let membership = started.elapsed();
    ensure!(members == args.members, "the group has {members} members, not {}", args.members);
    let profile = DeploymentProfileId::now_v7();
    fixtures::insert_profile(&store, TENANT, profile, "Bench", now).await?;
    fixtures::insert_assignment(&store, TENANT, profile, Target::Group(group), now).await?;

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
    let figures: Vec<Figure> = vec![
        figure(
            format!("engine: {members} of {} devices to assigned* ({backend})", args.devices),
            secs(total),
            format!("≤ {target} s"),
            Some(total.as_secs_f64() <= target),
        ),
        figure("first pass: scope → pending", secs(first_time), "—", None),
        figure("second pass: pending → assigned (after the delay)", secs(second_time), "—", None),
        figure("pass over unchanged data", secs(idle_time), "—", None),
        figure(format!("membership, one INSERT … SELECT ({members} members)"), secs(membership), "—", None),
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

/// The group's members: the Entra objects whose `[OrderId]` is `Bench`, inserted with one
/// statement. Once the group store's evaluator is here, this becomes a dynamic group with the
/// rule `(device.devicePhysicalIds -any (_ -eq "[OrderId]:Bench"))` and its evaluation.
async fn fill_group(store: &SqlStore, group: GroupId, now: OffsetDateTime) -> Result<u64> {
    fixtures::insert_group(store, TENANT, group, "Bench devices", now).await?;
    Ok(fixtures::add_group_members_by_order_id(store, TENANT, group, TAG, now).await?)
}

/// Claims the pass due at `now` and runs it, as the worker would; its stats and its time.
async fn pass(store: &SqlStore, now: OffsetDateTime, job: &NewJob) -> Result<(ProfileAssignmentStats, Duration)> {
    let started = Instant::now();
    let claimed = store.claim_job("bench", now, now, time::Duration::minutes(5)).await?.context("no pass was due")?;
    let stats = store
        .assign_deployment_profiles(&claimed.lease(), TENANT, now, DELAY, job)
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
