//! What truly differs between the engines' SQL, as the [`Dialect`], and the mapping from each
//! collection's fields to its columns.

use dmsync_core::autopilot::{DeviceField, ImportedField};
use dmsync_core::deployment_profiles::ProfileField;
use dmsync_core::entra::EntraDeviceField;
use dmsync_core::exchange::{ConnectorField, ManagedDeviceField};
use dmsync_core::groups::GroupField;
use dmsync_core::scope_tags::RoleScopeTagField;

/// The one place where the engines' SQL differs. In list queries both ignore case for all of
/// Unicode, as Graph does, and both order bytewise (`$orderby` and the keyset cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `= … COLLATE` [`SQLITE_UNICODE_NOCASE`] and `REGEXP '(?i)…'`: SQLite's own `NOCASE` and
    /// `LIKE` ignore only ASCII case, so every connection registers the collation and sqlx's
    /// `regexp` function (see [`sqlite_case_hooks`]).
    Sqlite,
    /// `lower(…) = lower(…)` and ILIKE under the database's default collation: columns use the
    /// "C" collation (bytewise order, as on SQLite), under which `lower()` changes only ASCII.
    Postgres,
}

/// The collation SQLite compares `$filter` strings with, ignoring case for all of Unicode.
pub const SQLITE_UNICODE_NOCASE: &str = "DMSYNC_UNICODE_NOCASE";

/// A character's lowercase as PostgreSQL's `lower()` gives it: one character for one (the first
/// of Rust's full mapping where that has several, so `İ` is `i` on both backends).
fn simple_lowercase(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Orders two strings by their characters' lowercase: equal exactly when they differ only in
/// case, and a total order, as SQLite requires of a collation.
pub fn unicode_nocase_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.chars().map(simple_lowercase).cmp(b.chars().map(simple_lowercase))
}

/// What every SQLite connection needs before the [`Dialect`] can be used on it: the collation
/// and the `regexp` function. Connections opened without them fail those queries with "no such
/// collation sequence" or "no such function".
pub fn sqlite_case_hooks(options: sqlx::sqlite::SqliteConnectOptions) -> sqlx::sqlite::SqliteConnectOptions {
    options.collation(SQLITE_UNICODE_NOCASE, unicode_nocase_cmp).with_regexp()
}

/// Every column a device is decoded from, each with the SQL that stands in for it in a page that
/// does not need it (`ListQuery::only`): an empty value of the column's type, typed for
/// PostgreSQL, so that the one decoder reads either.
pub const DEVICE_COLUMNS: &[(&str, &str)] = &[
    ("tenant_id", "''"),
    ("id", "''"),
    ("serial_number", "''"),
    ("manufacturer", "''"),
    ("model", "''"),
    ("group_tag", "''"),
    ("purchase_order_identifier", "''"),
    ("product_key", "''"),
    ("display_name", "''"),
    ("user_principal_name", "''"),
    ("addressable_user_name", "''"),
    ("enrollment_state", "'notContacted'"),
    ("last_contacted", "CAST(NULL AS BIGINT)"),
    ("device_account_upn", "''"),
    ("device_account_password", "''"),
    ("device_friendly_name", "''"),
    ("resource_name", "''"),
    ("deletion_requested_at", "CAST(NULL AS BIGINT)"),
    ("azure_ad_device_id", "''"),
    ("intended_profile_id", "CAST(NULL AS TEXT)"),
    ("assigned_profile_id", "CAST(NULL AS TEXT)"),
    ("profile_assignment_status", "'notAssigned'"),
    ("profile_assigned_at", "CAST(NULL AS BIGINT)"),
    ("created_at", "CAST(0 AS BIGINT)"),
];

/// What devices are read from: the view of each device's row with its profile assignment state
/// (`device_profile_states`, a row only for a device under a profile), so that the state's
/// columns read as they would on the device.
pub const DEVICE_ROWS: &str = "autopilot_device_rows";

pub fn device_column(field: DeviceField) -> &'static str {
    match field {
        DeviceField::Id => "id",
        DeviceField::SerialNumber => "serial_number",
        DeviceField::GroupTag => "group_tag",
        DeviceField::Model => "model",
        DeviceField::Manufacturer => "manufacturer",
        DeviceField::DisplayName => "display_name",
        DeviceField::UserPrincipalName => "user_principal_name",
        DeviceField::AddressableUserName => "addressable_user_name",
        DeviceField::EnrollmentState => "enrollment_state",
        DeviceField::PurchaseOrderIdentifier => "purchase_order_identifier",
        DeviceField::ProductKey => "product_key",
        DeviceField::DeploymentProfileAssignmentStatus => "profile_assignment_status",
    }
}

pub fn entra_device_column(field: EntraDeviceField) -> &'static str {
    match field {
        EntraDeviceField::Id => "id",
        EntraDeviceField::DeviceId => "device_id",
        EntraDeviceField::DisplayName => "display_name",
        EntraDeviceField::OperatingSystem => "operating_system",
    }
}

pub fn group_column(field: GroupField) -> &'static str {
    match field {
        GroupField::Id => "id",
        GroupField::DisplayName => "display_name",
        GroupField::MailNickname => "mail_nickname",
    }
}

pub fn imported_column(field: ImportedField) -> &'static str {
    match field {
        ImportedField::Id => "id",
        ImportedField::SerialNumber => "serial_number",
        ImportedField::GroupTag => "group_tag",
        ImportedField::ProductKey => "product_key",
        ImportedField::ImportId => "import_id",
        ImportedField::AssignedUserPrincipalName => "assigned_user_principal_name",
    }
}

pub fn connector_column(field: ConnectorField) -> &'static str {
    match field {
        ConnectorField::Id => "id",
        ConnectorField::Status => "status",
        ConnectorField::PrimarySmtpAddress => "primary_smtp_address",
        ConnectorField::ServerName => "server_name",
        ConnectorField::ConnectorServerName => "connector_server_name",
        ConnectorField::ExchangeConnectorType => "connector_type",
        ConnectorField::Version => "version",
        ConnectorField::ExchangeAlias => "exchange_alias",
        ConnectorField::ExchangeOrganization => "exchange_organization",
    }
}

pub fn managed_device_column(field: ManagedDeviceField) -> &'static str {
    match field {
        ManagedDeviceField::Id => "id",
        ManagedDeviceField::DeviceName => "device_name",
        ManagedDeviceField::UserPrincipalName => "user_principal_name",
        ManagedDeviceField::EmailAddress => "email_address",
        ManagedDeviceField::OperatingSystem => "operating_system",
        ManagedDeviceField::OsVersion => "os_version",
        ManagedDeviceField::Model => "device_model",
        ManagedDeviceField::Manufacturer => "manufacturer",
        ManagedDeviceField::EasDeviceId => "eas_device_id",
        ManagedDeviceField::ExchangeAccessState => "access_state",
        // Every device dmsync lists is an ActiveSync device.
        ManagedDeviceField::ManagementAgent => "'eas'",
    }
}

pub fn deployment_profile_column(field: ProfileField) -> &'static str {
    match field {
        ProfileField::Id => "id",
        ProfileField::DisplayName => "display_name",
    }
}

pub fn role_scope_tag_column(field: RoleScopeTagField) -> &'static str {
    match field {
        // Compared and ordered as the string the client sees, like every other `$filter`
        // value; the keyset's tie-break still uses the integer column.
        RoleScopeTagField::Id => "CAST(id AS TEXT)",
        RoleScopeTagField::DisplayName => "display_name",
        RoleScopeTagField::Description => "description",
    }
}

impl Dialect {
    /// What follows the job claim's inner SELECT. On PostgreSQL, SKIP LOCKED lets workers of
    /// every replica claim at once without waiting on each other's candidate rows, and the row
    /// lock makes the claim exclusive; SQLite's single writer already does.
    pub fn claim_lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Names the index a statement must use, where the planner would pick a worse one (SQLite).
    pub fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }

    /// `column` is one of the strings of the list parameter `param` (bound as `Value::TextList`).
    pub fn in_list(self, column: &str, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each({param}))"),
            Dialect::Postgres => format!("{column} = ANY({param})"),
        }
    }

    /// `column` equals `param` ignoring case. Domains and UPNs are `COLLATE NOCASE` columns on
    /// SQLite, so plain `=` keeps to their unique indexes; PostgreSQL's are on `lower(…)`.
    pub fn nocase_eq(self, column: &str, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} = {param}"),
            Dialect::Postgres => format!("lower({column}) = lower({param})"),
        }
    }

    /// The scalar function giving the larger of its arguments.
    pub fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "greatest",
        }
    }

    /// The function giving a blob's length in bytes.
    pub fn byte_length(self) -> &'static str {
        match self {
            Dialect::Sqlite => "length",
            Dialect::Postgres => "octet_length",
        }
    }

    /// Rows per multi-row statement of `columns` values each, within the engine's bound-parameter
    /// limit (SQLite's 32,766, PostgreSQL's 65,535), with room to spare.
    pub fn rows_per_insert(self, columns: usize) -> usize {
        let params = match self {
            Dialect::Sqlite => 6_500,
            Dialect::Postgres => 26_000,
        };
        (params / columns).max(1)
    }

    /// The statement that makes an emptiness check and an insert into `table` one step across
    /// processes, if the engine needs one: replicas starting together on an empty PostgreSQL
    /// database each generate a signing key, and the table lock keeps exactly one. SQLite's
    /// single writer already serialises them.
    pub fn lock_table(self, table: &str) -> Option<String> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")),
        }
    }

    /// The statements that give the transaction an empty `registration_staging` table, on disk on
    /// SQLite, dropped at commit on PostgreSQL.
    pub fn create_registration_staging(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &[
                "CREATE TEMP TABLE IF NOT EXISTS registration_staging (
                    line INTEGER NOT NULL, serial_number TEXT NOT NULL, device_id TEXT NOT NULL,
                    hardware_hash BLOB NOT NULL, hash_digest BLOB NOT NULL, manufacturer TEXT NOT NULL,
                    model TEXT NOT NULL, group_tag TEXT NOT NULL, purchase_order_identifier TEXT NOT NULL,
                    product_key TEXT NOT NULL)",
                "DELETE FROM registration_staging",
            ],
            Dialect::Postgres => &[r#"CREATE TEMP TABLE registration_staging (
                    line BIGINT NOT NULL, serial_number TEXT COLLATE "C" NOT NULL, device_id TEXT COLLATE "C" NOT NULL,
                    hardware_hash BYTEA NOT NULL, hash_digest BYTEA NOT NULL, manufacturer TEXT COLLATE "C" NOT NULL,
                    model TEXT COLLATE "C" NOT NULL, group_tag TEXT COLLATE "C" NOT NULL,
                    purchase_order_identifier TEXT COLLATE "C" NOT NULL, product_key TEXT COLLATE "C" NOT NULL
                ) ON COMMIT DROP"#],
        }
    }

    /// The indexes (and statistics) the staged rows' checks need, before they run.
    pub fn index_registration_staging(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &[
                "CREATE INDEX IF NOT EXISTS temp.registration_staging_serial ON registration_staging (serial_number)",
                "CREATE INDEX IF NOT EXISTS temp.registration_staging_digest ON registration_staging (hash_digest)",
            ],
            Dialect::Postgres => &[
                "CREATE INDEX ON registration_staging (serial_number)",
                "CREATE INDEX ON registration_staging (hash_digest)",
                "ANALYZE registration_staging",
            ],
        }
    }

    /// What removes the staging table at commit, where `ON COMMIT DROP` does not.
    pub fn drop_registration_staging(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => Some("DROP TABLE registration_staging"),
            Dialect::Postgres => None,
        }
    }

    /// The statements that give the transaction an empty `profile_targets` table, the
    /// assignment engine's winning profile per device, on disk on SQLite and dropped at commit
    /// on PostgreSQL. [`Self::drop_registration_staging`]'s rule applies: SQLite drops it itself.
    pub fn create_profile_targets(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &[
                "CREATE TEMP TABLE IF NOT EXISTS profile_targets (
                    device_id TEXT PRIMARY KEY, profile_id TEXT NOT NULL, all_devices INTEGER NOT NULL,
                    changed INTEGER NOT NULL)",
                "DELETE FROM profile_targets",
            ],
            Dialect::Postgres => &[r#"CREATE TEMP TABLE profile_targets (
                    device_id TEXT COLLATE "C" PRIMARY KEY, profile_id TEXT COLLATE "C" NOT NULL,
                    all_devices BIGINT NOT NULL, changed BIGINT NOT NULL
                ) ON COMMIT DROP"#],
        }
    }

    /// The statistics the planner needs of the filled `profile_targets`, where it keeps any
    /// (PostgreSQL; SQLite plans the engine's statements by their shape).
    pub fn analyze_profile_targets(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some("ANALYZE profile_targets"),
        }
    }

    /// What removes `profile_targets` at commit, where `ON COMMIT DROP` does not.
    pub fn drop_profile_targets(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => Some("DROP TABLE profile_targets"),
            Dialect::Postgres => None,
        }
    }

    /// The statement that makes the transaction the only one of its kind for `$1` (a tenant
    /// id) until it ends, across processes, keyed by `purpose`: a transaction-scoped advisory
    /// lock on PostgreSQL. SQLite's single writer already serialises write transactions.
    pub fn lock_per_tenant(self, purpose: &str) -> Option<String> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(format!("SELECT pg_advisory_xact_lock(hashtextextended('{purpose}:' || $1, 0))")),
        }
    }

    /// A new GUID for each row, a version 7 GUID with the timestamp of `time_ordered` (a version
    /// 7 GUID's text) and random bits after it. Entra objects are created in bulk with their
    /// Autopilot devices, whose ids are version 7; sharing their timestamps keeps the objects'
    /// index inserts at the end of the index instead of at a random page per object.
    pub fn guid_like(self, time_ordered: &str) -> String {
        let (random, variant) = match self {
            Dialect::Sqlite => ("lower(hex(randomblob(8)))", "substr('89ab', 1 + abs(random()) % 4, 1)"),
            Dialect::Postgres => ("md5(random()::text)", "substr('89ab', 1 + floor(random() * 4)::int, 1)"),
        };
        format!(
            "(substr({time_ordered}, 1, 15) || substr({random}, 1, 3) || '-' || {variant} || substr({random}, 1, 3) \
             || '-' || substr({random}, 1, 12))"
        )
    }

    /// The `[HWID]` physical id of a registration, from the digest of its hardware hash: `h:`
    /// and the digest's first 52 bits in decimal. Autopilot's own derivation is not public;
    /// this keeps its shape (`h:` and up to 16 digits) and gives one hash one value.
    pub fn hardware_id(self, digest: &str) -> String {
        match self {
            Dialect::Sqlite => {
                // The first 13 hex digits come from the first 7 bytes; converting only those
                // keeps this cheap for a sync that creates a million objects.
                let nibbles: Vec<String> = (1..=13)
                    .map(|k| {
                        format!(
                            "(instr('0123456789ABCDEF', substr(hex(substr({digest}, 1, 7)), {k}, 1)) - 1) * {}",
                            1u64 << (4 * (13 - k))
                        )
                    })
                    .collect();
                format!("('h:' || CAST({} AS TEXT))", nibbles.join(" + "))
            }
            Dialect::Postgres => {
                format!("('h:' || (('x' || substr(encode({digest}, 'hex'), 1, 13))::bit(52)::bigint)::text)")
            }
        }
    }

    /// Whether an upsert's `RETURNING xmax = 0` tells inserted rows from updated ones
    /// (PostgreSQL); SQLite reports them together, so they are told apart by counting.
    pub fn returns_inserted(self) -> bool {
        self == Dialect::Postgres
    }
}
