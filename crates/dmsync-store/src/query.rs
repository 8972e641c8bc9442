//! Translation of list queries into SQL, with every value bound as a parameter, and the reads
//! every collection shares: a page, a count and one row by id, each scoped to the tenant. Each
//! collection passes its own mapping from field to column; the engines differ only in how a
//! comparison ignores case (the [`Dialect`]).

use dmsync_core::filter::{CompareOp, Filter, Literal, StringFunction};
use dmsync_core::query::{ListQuery, SortDirection};
use dmsync_core::{Id, IdKind, StoreResult, TenantId};

use crate::db::{Query, Row, SqlStore};
use crate::sql::{Dialect, SQLITE_UNICODE_NOCASE};

/// Escapes LIKE's wildcards so a user's `%` or `_` matches itself.
fn like_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Appends a boolean SQL expression for the filter. Comparisons ignore case, as Intune's do.
/// Unset strings are stored as `''`, so `eq null` matches them.
pub fn push_filter<F: Copy>(sql: &mut Query, dialect: Dialect, filter: &Filter<F>, column: fn(F) -> &'static str) {
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
                Literal::String(s) => push_string_eq(sql, dialect, col, *op == CompareOp::Ne, s),
                Literal::Null => {
                    sql.push(&format!("({not}{col} = '')"));
                }
                // No listed property is boolean; the server refuses such filters earlier.
                Literal::Bool(_) => {
                    sql.push(&format!("({not}1 = 0)"));
                }
            }
        }
        Filter::Function { function, field, value } => {
            push_string_function(sql, dialect, column(*field), *function, value);
        }
    }
}

/// Appends `(expr = value)` (or its negation) ignoring case: `expr` is a column or any SQL
/// string expression over columns, never client text.
pub fn push_string_eq(sql: &mut Query, dialect: Dialect, expr: &str, negate: bool, value: &str) {
    let not = if negate { "NOT " } else { "" };
    match dialect {
        Dialect::Sqlite => {
            sql.push(&format!("({not}{expr} = ")).push_bind(value).push(&format!(" COLLATE {SQLITE_UNICODE_NOCASE})"));
        }
        Dialect::Postgres => {
            sql.push(&format!("({not}lower({expr} COLLATE \"default\") = lower(")).push_bind(value).push("))");
        }
    }
}

/// Appends whether `expr` starts with, ends with or contains `value`, ignoring case.
pub fn push_string_function(sql: &mut Query, dialect: Dialect, expr: &str, function: StringFunction, value: &str) {
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
            sql.push(&format!("({expr} REGEXP ")).push_bind(pattern).push(")");
        }
        // ILIKE follows the collation's notion of case, so the expression is compared under
        // the database's default one, not its own "C".
        Dialect::Postgres => {
            let escaped = like_literal(value);
            let pattern = match function {
                StringFunction::StartsWith => format!("{escaped}%"),
                StringFunction::EndsWith => format!("%{escaped}"),
                StringFunction::Contains => format!("%{escaped}%"),
            };
            sql.push(&format!("({expr} COLLATE \"default\" ILIKE ")).push_bind(pattern).push(" ESCAPE '\\')");
        }
    }
}

/// Appends the filter (if any), the keyset condition, the ORDER BY and the LIMIT of a page.
pub fn push_page<F: Copy>(sql: &mut Query, dialect: Dialect, query: &ListQuery<F>, column: fn(F) -> &'static str) {
    if let Some(filter) = &query.filter {
        sql.push(" AND ");
        push_filter(sql, dialect, filter, column);
    }
    match query.order_by {
        None => {
            if let Some(after) = &query.after {
                sql.push(" AND id > ").push_bind(after.id);
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
                sql.push(&format!(" AND ({col} {cmp} "))
                    .push_bind(value.as_str())
                    .push(&format!(" OR ({col} = "))
                    .push_bind(value)
                    .push(&format!(" AND id {cmp} "))
                    .push_bind(after.id)
                    .push("))");
            }
            sql.push(&format!(" ORDER BY {col} {dir}, id {dir}"));
        }
    }
    sql.push(" LIMIT ").push_bind(query.limit as i64);
}

/// The select list of a page: `*`, or, when the query reads only some fields, each of `columns`
/// by name if the page needs it (a selected field, the ordering field, the tenant and the id)
/// and its stand-in otherwise.
fn projection<F: Copy>(query: &ListQuery<F>, column: fn(F) -> &'static str, columns: &[(&str, &str)]) -> String {
    let Some(only) = query.only.as_deref().filter(|_| !columns.is_empty()) else { return "*".to_owned() };
    let needed = |name: &str| {
        matches!(name, "tenant_id" | "id")
            || only.iter().any(|f| column(*f) == name)
            || query.order_by.is_some_and(|(f, _)| column(f) == name)
    };
    let list: Vec<String> = columns
        .iter()
        .map(|(name, empty)| if needed(name) { (*name).to_owned() } else { format!("{empty} AS {name}") })
        .collect();
    list.join(", ")
}

impl SqlStore {
    /// A page of the list query from the tenant's rows in `table`, decoded by `decode`. With
    /// `columns` (every column `decode` reads, each with the SQL that stands in for it) and a
    /// query that reads `only` some fields, the rest are not read: SQLite and sqlx then copy
    /// the selected values alone.
    pub(crate) async fn list_page<F: Copy, T>(
        &self,
        table: &str,
        tenant: TenantId,
        query: &ListQuery<F>,
        column: fn(F) -> &'static str,
        columns: &[(&str, &str)],
        decode: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let mut sql =
            Query::new(format!("SELECT {} FROM {table} WHERE tenant_id = ", projection(query, column, columns)));
        sql.push_bind(tenant);
        push_page(&mut sql, self.dialect(), query, column);
        self.read().fetch_all(sql).await?.iter().map(decode).collect()
    }

    /// How many rows of the tenant in `table` match the filter.
    pub(crate) async fn count<F: Copy>(
        &self,
        table: &str,
        tenant: TenantId,
        filter: Option<&Filter<F>>,
        column: fn(F) -> &'static str,
    ) -> StoreResult<u64> {
        let mut sql = Query::new(format!("SELECT count(*) FROM {table} WHERE tenant_id = "));
        sql.push_bind(tenant);
        if let Some(filter) = filter {
            sql.push(" AND ");
            push_filter(&mut sql, self.dialect(), filter, column);
        }
        Ok(self.read().scalar::<i64>(sql).await? as u64)
    }

    /// One row of the tenant in `table` by id, decoded by `decode`.
    pub(crate) async fn by_id<K: IdKind, T>(
        &self,
        table: &str,
        tenant: TenantId,
        id: Id<K>,
        decode: fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let sql = Query::new(format!("SELECT * FROM {table} WHERE tenant_id = $1 AND id = $2")).bind(tenant).bind(id);
        self.read().fetch_optional(sql).await?.as_ref().map(decode).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmsync_core::autopilot::DeviceField;
    use uuid::Uuid;

    /// The plan of a device page filtered by `filter`, as SQLite would run it.
    async fn device_page_plan(filter: &str, after: bool) -> Vec<String> {
        let store = SqlStore::open("sqlite::memory:").await.unwrap();
        let filter = dmsync_core::filter::parse_filter(filter, |name| match name {
            "groupTag" => Some(DeviceField::GroupTag),
            _ => Some(DeviceField::SerialNumber),
        })
        .unwrap();
        let mut sql = Query::new("EXPLAIN QUERY PLAN SELECT * FROM autopilot_device_rows WHERE tenant_id = ");
        sql.push_bind(Uuid::nil()).push(" AND ");
        push_filter(&mut sql, Dialect::Sqlite, &filter, crate::sql::device_column);
        if after {
            sql.push(" AND id > ").push_bind(Uuid::nil());
        }
        sql.push(" ORDER BY id LIMIT 51");
        store.read().fetch_all(sql).await.unwrap().iter().map(|row| row.get::<String, _>("detail").unwrap()).collect()
    }

    /// `serialNumber eq` and `groupTag eq` ignore case for all of Unicode and still search an
    /// index under the same collation, in id order (no temporary sort), as a keyset page needs
    /// at a million devices.
    #[tokio::test]
    async fn serial_number_and_group_tag_eq_search_their_case_insensitive_indexes() {
        for (filter, index) in [
            ("serialNumber eq 'üni-1'", "autopilot_devices_serial_nocase"),
            ("groupTag eq 'Kiosk'", "autopilot_devices_group_tag_nocase"),
        ] {
            for after in [false, true] {
                let plan = device_page_plan(filter, after).await;
                assert!(plan.iter().all(|step| step.starts_with("SEARCH ")), "{plan:?}");
                assert!(plan.iter().any(|step| step.contains(index)), "{filter}, after {after}: {plan:?}");
                assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{filter}: {plan:?}");
            }
        }
    }
}
