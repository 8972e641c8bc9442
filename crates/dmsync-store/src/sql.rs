//! Translation of list queries into SQL, with every value bound as a parameter. Shared by every
//! collection (each passes its own mapping from field to column) and by both backends, which
//! differ only in how a comparison ignores case; that difference is the [`Dialect`].

use dmsync_core::autopilot::{DeviceField, ImportedField};
use dmsync_core::exchange::{ConnectorField, ManagedDeviceField};
use dmsync_core::filter::{CompareOp, Filter, Literal, StringFunction};
use dmsync_core::query::{ListQuery, SortDirection};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// The one place where the backends' SQL differs in list queries. Both ignore case for all of
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

/// Escapes LIKE's wildcards so a user's `%` or `_` matches itself.
fn like_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Appends a boolean SQL expression for the filter. Comparisons ignore case, as Intune's do.
/// Unset strings are stored as `''`, so `eq null` matches them.
pub fn push_filter<DB, F: Copy>(
    sql: &mut QueryBuilder<DB>,
    dialect: Dialect,
    filter: &Filter<F>,
    column: fn(F) -> &'static str,
) where
    DB: Database,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            let op = if matches!(filter, Filter::And(..)) { " AND " } else { " OR " };
            sql.push("(");
            push_filter(sql, dialect, a, column);
            sql.push(op);
            push_filter(sql, dialect, b, column);
            sql.push(")");
        }
        Filter::Not(inner) => {
            sql.push("(NOT ");
            push_filter(sql, dialect, inner, column);
            sql.push(")");
        }
        Filter::Compare { field, op, value } => {
            let col = column(*field);
            let not = if *op == CompareOp::Ne { "NOT " } else { "" };
            match value {
                Literal::String(s) => match dialect {
                    Dialect::Sqlite => {
                        sql.push(format!("({not}{col} = "))
                            .push_bind(s.clone())
                            .push(format!(" COLLATE {SQLITE_UNICODE_NOCASE})"));
                    }
                    Dialect::Postgres => {
                        sql.push(format!("({not}lower({col} COLLATE \"default\") = lower("))
                            .push_bind(s.clone())
                            .push("))");
                    }
                },
                Literal::Null => {
                    sql.push(format!("({not}{col} = '')"));
                }
                // No listed property is boolean; the server refuses such filters earlier.
                Literal::Bool(_) => {
                    sql.push(format!("({not}1 = 0)"));
                }
            }
        }
        Filter::Function { function, field, value } => {
            let col = column(*field);
            match dialect {
                // A case-insensitive regular expression of the escaped value: SQLite's LIKE
                // ignores only ASCII case.
                Dialect::Sqlite => {
                    let escaped = regex_syntax::escape(value);
                    let pattern = match function {
                        StringFunction::StartsWith => format!("(?i)^{escaped}"),
                        StringFunction::EndsWith => format!("(?i){escaped}$"),
                        StringFunction::Contains => format!("(?i){escaped}"),
                    };
                    sql.push(format!("({col} REGEXP ")).push_bind(pattern).push(")");
                }
                // ILIKE follows the collation's notion of case, so the column is compared under
                // the database's default one, not its own "C".
                Dialect::Postgres => {
                    let escaped = like_literal(value);
                    let pattern = match function {
                        StringFunction::StartsWith => format!("{escaped}%"),
                        StringFunction::EndsWith => format!("%{escaped}"),
                        StringFunction::Contains => format!("%{escaped}%"),
                    };
                    sql.push(format!("({col} COLLATE \"default\" ILIKE ")).push_bind(pattern).push(" ESCAPE '\\')");
                }
            }
        }
    }
}

/// Appends the filter (if any), the keyset condition, the ORDER BY and the LIMIT of a page.
pub fn push_page<DB, F: Copy>(
    sql: &mut QueryBuilder<DB>,
    dialect: Dialect,
    query: &ListQuery<F>,
    column: fn(F) -> &'static str,
) where
    DB: Database,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    if let Some(filter) = &query.filter {
        sql.push(" AND ");
        push_filter(sql, dialect, filter, column);
    }
    match query.order_by {
        None => {
            if let Some(after) = &query.after {
                sql.push(" AND id > ").push_bind(after.id.to_string());
            }
            sql.push(" ORDER BY id");
        }
        Some((field, direction)) => {
            let col = column(field);
            let (cmp, dir) = match direction {
                SortDirection::Ascending => (">", "ASC"),
                SortDirection::Descending => ("<", "DESC"),
            };
            if let Some(after) = &query.after {
                let value = after.sort_value.clone().unwrap_or_default();
                sql.push(format!(" AND ({col} {cmp} "))
                    .push_bind(value.clone())
                    .push(format!(" OR ({col} = "))
                    .push_bind(value)
                    .push(format!(" AND id {cmp} "))
                    .push_bind(after.id.to_string())
                    .push("))");
            }
            sql.push(format!(" ORDER BY {col} {dir}, id {dir}"));
        }
    }
    sql.push(" LIMIT ").push_bind(query.limit as i64);
}
