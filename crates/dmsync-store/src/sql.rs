//! Translation of list queries into SQL, with every value bound as a parameter. Shared by every
//! collection (each passes its own mapping from field to column) and by both backends, which
//! differ only in how a comparison ignores case; that difference is the [`Dialect`].

use dmsync_core::autopilot::{DeviceField, ImportedField};
use dmsync_core::exchange::{ConnectorField, ManagedDeviceField};
use dmsync_core::filter::{CompareOp, Filter, Literal, StringFunction};
use dmsync_core::query::{ListQuery, SortDirection};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// The one place where the backends' SQL differs in list queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `= … COLLATE NOCASE` and LIKE, which ignores ASCII case on its own.
    Sqlite,
    /// `lower(…) = lower(…)` and ILIKE; columns use the "C" collation, so ordering is bytewise
    /// as on SQLite.
    Postgres,
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
pub fn push_filter<DB, F: Copy>(sql: &mut QueryBuilder<DB>, dialect: Dialect, filter: &Filter<F>, column: fn(F) -> &'static str)
where
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
                        sql.push(format!("({not}{col} = ")).push_bind(s.clone()).push(" COLLATE NOCASE)");
                    }
                    Dialect::Postgres => {
                        sql.push(format!("({not}lower({col}) = lower(")).push_bind(s.clone()).push("))");
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
            let escaped = like_literal(value);
            let pattern = match function {
                StringFunction::StartsWith => format!("{escaped}%"),
                StringFunction::EndsWith => format!("%{escaped}"),
                StringFunction::Contains => format!("%{escaped}%"),
            };
            // SQLite's LIKE ignores ASCII case, as PostgreSQL's ILIKE does: Intune's string
            // functions ignore case.
            let like = match dialect {
                Dialect::Sqlite => "LIKE",
                Dialect::Postgres => "ILIKE",
            };
            sql.push(format!("({} {like} ", column(*field))).push_bind(pattern).push(" ESCAPE '\\')");
        }
    }
}

/// Appends the filter (if any), the keyset condition, the ORDER BY and the LIMIT of a page.
pub fn push_page<DB, F: Copy>(sql: &mut QueryBuilder<DB>, dialect: Dialect, query: &ListQuery<F>, column: fn(F) -> &'static str)
where
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
