//! PostgreSQL compatibility for SQL that arrives over the PostgreSQL wire protocol: the
//! `pg_catalog` schema (tables such as `pg_class`, `pg_namespace`, `pg_attribute`, `pg_type`
//! and functions such as `pg_table_is_visible`, `format_type`, `pg_get_userbyid`) that
//! `psql`'s `\d` commands and tools such as Grafana query, and a rewriting parser that turns
//! the PostgreSQL-only syntax those queries use (`OPERATOR(pg_catalog.~)`,
//! `COLLATE pg_catalog.default`, `'…'::regclass`, `= ANY (…)`, qualified function names, …)
//! into SQL that DataFusion plans. Both come from the `datafusion-pg-catalog` crate.
//!
//! The catalog describes tables and columns only, never rows: it is the same for every
//! tenant, like `information_schema`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{SchemaProvider, TableFunctionImpl};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::{QueryError, Result};

/// Splits `sql` into statements and rewrites each into SQL that DataFusion plans (see the
/// module docs); the statements come back as text, in order.
pub fn statements(sql: &str) -> Result<Vec<String>> {
    static PARSER: OnceLock<PostgresCompatibilityParser> = OnceLock::new();
    let parser = PARSER.get_or_init(PostgresCompatibilityParser::new);
    let statements = parser
        .parse(sql)
        .map_err(|err| QueryError::Invalid(format!("syntax error: {err}")))?;
    Ok(statements.iter().map(ToString::to_string).collect())
}

/// The run-time parameters `current_setting(name)` answers (PostgreSQL's names, matched
/// case-insensitively). The version is the one the wire protocol announces at start-up.
pub const SETTINGS: &[(&str, &str)] = &[
    ("server_version", "16.6"),
    ("server_version_num", "160006"),
    ("search_path", "\"$user\", public"),
    ("client_encoding", "UTF8"),
    ("server_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "63"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_read_only", "on"),
];

fn setting(name: &str) -> std::result::Result<&'static str, DataFusionError> {
    SETTINGS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            DataFusionError::Execution(format!("unrecognized configuration parameter \"{name}\""))
        })
}

/// `current_setting(text) → text`, from [`SETTINGS`]; an unknown name is an error, as in
/// PostgreSQL.
fn current_setting(args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    match args {
        [ColumnarValue::Scalar(name)] => {
            let value = match name {
                ScalarValue::Utf8(Some(n))
                | ScalarValue::LargeUtf8(Some(n))
                | ScalarValue::Utf8View(Some(n)) => Some(setting(n)?.to_owned()),
                _ => None,
            };
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
        }
        [ColumnarValue::Array(names)] => {
            let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
            let values = names
                .as_string::<i32>()
                .iter()
                .map(|n| n.map(setting).transpose())
                .collect::<std::result::Result<StringArray, _>>()?;
            Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
        }
        _ => Err(DataFusionError::Plan(
            "current_setting takes one argument".into(),
        )),
    }
}

/// `pg_catalog` and PostgreSQL's functions, set up once in a template session and then added
/// to each session: setting them up costs milliseconds (the static catalog tables are decoded
/// from Arrow files), copying them costs microseconds, and one shared schema keeps table OIDs
/// the same from one statement to the next (psql looks a table's OID up, then its columns by
/// that OID).
#[derive(Debug, Clone)]
pub(crate) struct PgCatalog {
    schema: Arc<dyn SchemaProvider>,
    scalar: Vec<Arc<ScalarUDF>>,
    table: Vec<(String, Arc<dyn TableFunctionImpl>)>,
}

/// Sets `pg_catalog` up in `template` (whose tables must be registered already, and whose
/// session was made with [`type_planner`]) and keeps what [`install`] adds to sessions with
/// the same tables.
pub(crate) fn catalog_of(template: &SessionContext) -> Result<PgCatalog> {
    install_functions(template)?;
    let name = default_catalog(template);
    let schema = template
        .catalog(&name)
        .and_then(|catalog| catalog.schema(PG_CATALOG))
        .ok_or_else(|| QueryError::Execution("pg_catalog was not registered".into()))?;
    // Only what the set-up added or replaced: every session has DataFusion's own functions
    // already (the same shared instances a plain session holds).
    let (state, plain) = (template.state(), SessionContext::new().state());
    let scalar = added_or_replaced(state.scalar_functions(), plain.scalar_functions())
        .map(|(_, f)| Arc::clone(f))
        .collect::<Vec<_>>();
    let table = added_or_replaced(state.table_functions(), plain.table_functions())
        .map(|(name, f)| (name.clone(), Arc::clone(f.function())))
        .collect::<Vec<_>>();
    Ok(PgCatalog {
        schema,
        scalar,
        table,
    })
}

/// Entries of a session's function registry that a plain session does not hold as the same
/// instance (added, or replaced by the `pg_catalog` set-up).
fn added_or_replaced<'a, T>(
    session: &'a HashMap<String, Arc<T>>,
    plain: &'a HashMap<String, Arc<T>>,
) -> impl Iterator<Item = (&'a String, &'a Arc<T>)> {
    session.iter().filter(|(name, f)| {
        plain
            .get(*name)
            .is_none_or(|builtin| !Arc::ptr_eq(builtin, f))
    })
}

/// The planner of PostgreSQL's OID alias types (`regclass`, `oid`, …), for sessions that
/// get [`install`]ed.
pub(crate) fn type_planner() -> Arc<dyn TypePlanner> {
    Arc::new(PgOidTypePlanner)
}

/// Adds `pg_catalog` and PostgreSQL's functions (from [`catalog_of`]) to `ctx`, a session
/// made with [`type_planner`].
pub(crate) fn install(ctx: &SessionContext, pg: &PgCatalog) -> Result<()> {
    for udf in &pg.scalar {
        ctx.register_udf(udf.as_ref().clone());
    }
    for (name, function) in &pg.table {
        ctx.register_udtf(name, Arc::clone(function));
    }
    let name = default_catalog(ctx);
    let catalog = ctx
        .catalog(&name)
        .ok_or_else(|| QueryError::Execution(format!("no catalog {name}")))?;
    catalog.register_schema(PG_CATALOG, Arc::clone(&pg.schema))?;
    Ok(())
}

const PG_CATALOG: &str = "pg_catalog";

fn default_catalog(ctx: &SessionContext) -> String {
    ctx.state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone()
}

/// `pg_catalog` and PostgreSQL's catalog functions, plus `current_setting` (Grafana reads the
/// server version and `search_path` with it).
fn install_functions(ctx: &SessionContext) -> Result<()> {
    let catalog = default_catalog(ctx);
    datafusion_pg_catalog::setup_pg_catalog(ctx, &catalog, EmptyContextProvider)
        .map_err(|err| QueryError::from(*err))?;
    ctx.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(current_setting),
    ));
    Ok(())
}
