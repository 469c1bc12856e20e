//! `from: postgres:schema.table` — a PostgreSQL table read over the wire protocol
//! (tokio-postgres, no TLS: for servers on loopback or a trusted network).
//!
//! Rows stream in batches (a scan never holds the table). Projection and `LIMIT` go to the
//! server; filters go too, as a superset DataFusion filters again (`Inexact`), and only those
//! whose meaning PostgreSQL shares exactly: comparisons of integer, boolean, date and timestamp
//! columns with literals, and equality of text. Text ordering (collations), floats (-0.0 equals
//! 0.0 there, not here) and everything else stay in DataFusion.
//!
//! Types: `int2/4/8`, `float4/8`, `bool`, `text`/`varchar`/`char`/`name`, `bytea`, `date`,
//! `timestamp` (microseconds, no zone), `timestamptz` (microseconds, UTC) and `numeric(p,s)`
//! with `p <= 38` (read exactly through its text form). Other types, and `numeric` without a
//! precision, are refused with the column named: cast them in a view.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::{StreamExt, TryStreamExt};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, Row};

use crate::config::secrets;

/// The params a PostgreSQL source understands (Spice's names).
pub const PARAMS: &[&str] = &[
    "pg_host",
    "pg_port",
    "pg_db",
    "pg_user",
    "pg_pass",
    "pg_sslmode",
];

/// Rows per batch read from the server.
const BATCH_ROWS: usize = 8192;

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Connection settings, secrets resolved.
#[derive(Clone)]
struct Connection {
    config: tokio_postgres::Config,
    /// `host:port/db` for messages (never the password).
    shown: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Connection {
    fn from_params(params: &BTreeMap<String, String>) -> Result<Self> {
        for key in params.keys() {
            if !PARAMS.contains(&key.as_str()) {
                return Err(plan(format!(
                    "postgres source: unknown param `{key}`; valid params: {}",
                    PARAMS.join(", ")
                )));
            }
        }
        let get = |key: &str| -> Result<Option<String>> {
            params
                .get(key)
                .map(|v| secrets::resolve(key, v).map_err(plan))
                .transpose()
        };
        if let Some(mode) = get("pg_sslmode")?
            && mode != "disable"
        {
            return Err(plan(format!(
                "postgres source: pg_sslmode `{mode}` needs TLS, which this build does not \
                 have; use pg_sslmode: disable (loopback or a trusted network)"
            )));
        }
        let host = get("pg_host")?.unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = match get("pg_port")? {
            Some(port) => port.parse::<u16>().map_err(|_| {
                plan(format!(
                    "postgres source: pg_port `{port}` is not a port number"
                ))
            })?,
            None => 5432,
        };
        let db = get("pg_db")?.unwrap_or_else(|| "postgres".to_owned());
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .dbname(&db)
            .application_name("accel");
        if let Some(user) = get("pg_user")? {
            config.user(&user);
        }
        if let Some(pass) = get("pg_pass")? {
            config.password(pass);
        }
        Ok(Self {
            config,
            shown: format!("{host}:{port}/{db}"),
        })
    }

    async fn connect(&self) -> Result<Client> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| {
            DataFusionError::Execution(format!(
                "postgres source {}: cannot connect: {e}",
                self.shown
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres connection closed: {e}");
            }
        });
        Ok(client)
    }
}

/// How one column is read.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    data_type: DataType,
    /// Read through `::text` (numeric).
    as_text: bool,
    /// PostgreSQL's type name (`text`, `bpchar`, …).
    pg_type: String,
}

/// A PostgreSQL table as a DataFusion table.
#[derive(Debug)]
pub struct PostgresTable {
    connection: Connection,
    /// `"schema"."table"`, quoted.
    relation: String,
    columns: Vec<Column>,
    schema: SchemaRef,
}

/// Opens `schema.table` (schema `public` when none is given) and reads its columns.
pub async fn open(
    schema: Option<&str>,
    table: &str,
    params: &BTreeMap<String, String>,
) -> Result<Arc<dyn TableProvider>> {
    let connection = Connection::from_params(params)?;
    let client = connection.connect().await?;
    let schema_name = schema.unwrap_or("public");
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, a.atttypmod, a.attnotnull \
             FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid \
             JOIN pg_namespace n ON c.relnamespace = n.oid JOIN pg_type t ON a.atttypid = t.oid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema_name, &table],
        )
        .await
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "postgres source {}: reading the columns of {schema_name}.{table}: {e}",
                connection.shown
            ))
        })?;
    if rows.is_empty() {
        return Err(plan(format!(
            "postgres source {}: no table {schema_name}.{table} (or it has no columns)",
            connection.shown
        )));
    }
    let mut columns = Vec::new();
    let mut fields = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let type_name: String = row.get(1);
        let modifier: i32 = row.get(2);
        let not_null: bool = row.get(3);
        let (data_type, as_text) = arrow_type(&type_name, modifier).ok_or_else(|| {
            plan(format!(
                "postgres source {schema_name}.{table}: column `{name}` has type {type_name}{}, \
                 which accel cannot read exactly; select it through a view with a cast (to \
                 text, bigint, double precision, numeric(p,s) with p <= 38, timestamp…)",
                if type_name == "numeric" {
                    " without a precision"
                } else {
                    ""
                }
            ))
        })?;
        fields.push(Field::new(&name, data_type.clone(), !not_null));
        columns.push(Column {
            name,
            data_type,
            as_text,
            pg_type: type_name,
        });
    }
    Ok(Arc::new(PostgresTable {
        connection,
        relation: format!("{}.{}", quote(schema_name), quote(table)),
        columns,
        schema: Arc::new(Schema::new(fields)),
    }))
}

/// The Arrow type a PostgreSQL type is read as, and whether through its text form.
fn arrow_type(type_name: &str, modifier: i32) -> Option<(DataType, bool)> {
    let plain = |t: DataType| Some((t, false));
    match type_name {
        "int2" => plain(DataType::Int16),
        "int4" => plain(DataType::Int32),
        "int8" => plain(DataType::Int64),
        "float4" => plain(DataType::Float32),
        "float8" => plain(DataType::Float64),
        "bool" => plain(DataType::Boolean),
        "text" | "varchar" | "bpchar" | "name" => plain(DataType::Utf8),
        "bytea" => plain(DataType::Binary),
        "date" => plain(DataType::Date32),
        "timestamp" => plain(DataType::Timestamp(TimeUnit::Microsecond, None)),
        "timestamptz" => plain(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        )),
        "numeric" if modifier >= 4 => {
            let precision = ((modifier - 4) >> 16) & 0xffff;
            // An 11-bit signed field: PostgreSQL 15 allows negative scales (and scales above
            // the precision); neither has an exact reading here.
            let scale = (((modifier - 4) & 0x7ff) ^ 1024) - 1024;
            ((1..=38).contains(&precision) && (0..=precision).contains(&scale))
                .then_some((DataType::Decimal128(precision as u8, scale as i8), true))
        }
        _ => None,
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn plan(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

#[async_trait::async_trait]
impl TableProvider for PostgresTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.filter_sql(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = projection
            .cloned()
            .unwrap_or_else(|| (0..self.columns.len()).collect());
        let columns: Vec<Column> = indices.iter().map(|i| self.columns[*i].clone()).collect();
        let select: Vec<String> = if columns.is_empty() {
            vec!["1".to_owned()]
        } else {
            columns
                .iter()
                .map(|c| {
                    if c.as_text {
                        format!("{}::text", quote(&c.name))
                    } else {
                        quote(&c.name)
                    }
                })
                .collect()
        };
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), self.relation);
        let conditions: Vec<String> = filters.iter().filter_map(|f| self.filter_sql(f)).collect();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let schema = Arc::new(self.schema.project(&indices)?);
        let partition = Arc::new(PostgresScan {
            connection: self.connection.clone(),
            sql,
            columns,
            schema: Arc::clone(&schema),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![partition],
            None,
            [],
            false,
            None,
        )?))
    }
}

impl PostgresTable {
    /// `filter` as PostgreSQL SQL with the same meaning (possibly keeping more rows), or
    /// `None` when it has none there.
    fn filter_sql(&self, filter: &Expr) -> Option<String> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return None;
        };
        match op {
            Operator::And => {
                return Some(format!(
                    "({} AND {})",
                    self.filter_sql(left)?,
                    self.filter_sql(right)?
                ));
            }
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => {}
            _ => return None,
        }
        let (column, value, op) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
            _ => return None,
        };
        let declared = self.columns.iter().find(|c| c.name == column.name)?;
        let literal = literal_sql(&declared.data_type, value)?;
        // Text: only equality of text/varchar, where PostgreSQL keeps at least DataFusion's
        // rows. It orders by collation (DataFusion by bytes), and `<>` would drop rows it
        // deems equal (char padding, nondeterministic collations).
        if declared.data_type == DataType::Utf8
            && (op != Operator::Eq || !matches!(declared.pg_type.as_str(), "text" | "varchar"))
        {
            return None;
        }
        Some(format!("{} {op} {literal}", quote(&column.name)))
    }
}

/// A literal compared with a column of `column_type`, as PostgreSQL SQL with the same value.
fn literal_sql(column_type: &DataType, value: &ScalarValue) -> Option<String> {
    use ScalarValue as S;
    let integer = |v: i64| Some(v.to_string());
    match (column_type, value) {
        (DataType::Int16 | DataType::Int32 | DataType::Int64, S::Int8(Some(v))) => {
            integer(*v as i64)
        }
        (DataType::Int16 | DataType::Int32 | DataType::Int64, S::Int16(Some(v))) => {
            integer(*v as i64)
        }
        (DataType::Int16 | DataType::Int32 | DataType::Int64, S::Int32(Some(v))) => {
            integer(*v as i64)
        }
        (DataType::Int16 | DataType::Int32 | DataType::Int64, S::Int64(Some(v))) => integer(*v),
        (DataType::Boolean, S::Boolean(Some(v))) => Some(v.to_string()),
        (DataType::Utf8, S::Utf8(Some(v)) | S::LargeUtf8(Some(v)) | S::Utf8View(Some(v)))
            if !v.contains('\0') =>
        {
            Some(format!("'{}'", v.replace('\'', "''")))
        }
        (DataType::Date32, S::Date32(Some(days))) => {
            let date = datafusion::arrow::temporal_conversions::date32_to_datetime(*days)?;
            in_plain_years(date.date().format("%Y-%m-%d").to_string(), "date")
        }
        (
            DataType::Timestamp(TimeUnit::Microsecond, zone),
            S::TimestampMicrosecond(Some(v), literal_zone),
        ) if zone.is_some() == literal_zone.is_some() => {
            let at = datafusion::arrow::temporal_conversions::timestamp_us_to_datetime(*v)?;
            let text = at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            match zone {
                Some(_) => in_plain_years(format!("{text}+00"), "timestamptz"),
                None => in_plain_years(text, "timestamp"),
            }
        }
        _ => None,
    }
}

/// A date or timestamp literal, for years 1 to 9999 (outside them the text forms differ).
fn in_plain_years(text: String, type_name: &str) -> Option<String> {
    let year: i32 = text.get(..4)?.parse().ok()?;
    (text.as_bytes()[4] == b'-' && (1..=9999).contains(&year))
        .then(|| format!("'{text}'::{type_name}"))
}

/// One scan: the statement, streamed from the server in batches.
#[derive(Debug)]
struct PostgresScan {
    connection: Connection,
    sql: String,
    columns: Vec<Column>,
    schema: SchemaRef,
}

impl PartitionStream for PostgresScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let connection = self.connection.clone();
        let sql = self.sql.clone();
        let columns = self.columns.clone();
        let schema = Arc::clone(&self.schema);
        let shown = connection.shown.clone();
        let rows = futures::stream::once(async move {
            let client = connection.connect().await?;
            let rows = client
                .query_raw(sql.as_str(), std::iter::empty::<i32>())
                .await
                .map_err(|e| pg_error(&shown, &sql, e))?;
            // The client lives as long as the rows.
            Ok::<_, DataFusionError>(rows.map(move |row| {
                let _keep = &client;
                row.map_err(|e| DataFusionError::Execution(format!("postgres: {e}")))
            }))
        })
        .try_flatten();
        let batch_schema = Arc::clone(&schema);
        let batches = rows.chunks(BATCH_ROWS).map(move |chunk| {
            let rows = chunk.into_iter().collect::<Result<Vec<Row>>>()?;
            to_batch(&batch_schema, &columns, &rows)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

fn pg_error(shown: &str, sql: &str, e: tokio_postgres::Error) -> DataFusionError {
    DataFusionError::Execution(format!("postgres source {shown}: `{sql}`: {e}"))
}

/// Microseconds since 1970 from a `timestamp`/`timestamptz` value.
struct Micros(i64);

impl<'a> FromSql<'a> for Micros {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let since_2000 = i64::from_be_bytes(raw.try_into()?);
        if since_2000 == i64::MAX || since_2000 == i64::MIN {
            return Err("an infinite timestamp has no Arrow value".into());
        }
        Ok(Self(
            since_2000
                .checked_add(EPOCH_MICROS)
                .ok_or("timestamp out of range")?,
        ))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
}

/// Days since 1970 from a `date` value.
struct Days(i32);

impl<'a> FromSql<'a> for Days {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let since_2000 = i32::from_be_bytes(raw.try_into()?);
        if since_2000 == i32::MAX || since_2000 == i32::MIN {
            return Err("an infinite date has no Arrow value".into());
        }
        Ok(Self(
            since_2000
                .checked_add(EPOCH_DAYS)
                .ok_or("date out of range")?,
        ))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

/// `numeric` text (`-12.340`) as an integer at `scale` decimal digits.
fn decimal_from_text(text: &str, scale: i8) -> std::result::Result<i128, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "numeric value `{text}` has no exact Arrow decimal value"
        ));
    }
    let scale = scale.max(0) as usize;
    if fraction.len() > scale {
        return Err(format!(
            "numeric value `{text}` has more than {scale} decimals"
        ));
    }
    let mut value: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(|| format!("numeric value `{text}` is out of range"))?;
    }
    for _ in fraction.len()..scale {
        value = value
            .checked_mul(10)
            .ok_or_else(|| format!("numeric value `{text}` is out of range"))?;
    }
    Ok(if negative { -value } else { value })
}

fn to_batch(schema: &SchemaRef, columns: &[Column], rows: &[Row]) -> Result<RecordBatch> {
    let error = |column: &Column, e: &dyn fmt::Display| {
        DataFusionError::Execution(format!("postgres column `{}`: {e}", column.name))
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (index, column) in columns.iter().enumerate() {
        macro_rules! read {
            ($builder:expr, $rust:ty, $convert:expr) => {{
                let mut builder = $builder;
                for row in rows {
                    let value: Option<$rust> = row.try_get(index).map_err(|e| error(column, &e))?;
                    builder.append_option(value.map($convert));
                }
                Arc::new(builder.finish()) as ArrayRef
            }};
        }
        let array = match &column.data_type {
            DataType::Int16 => read!(Int16Builder::new(), i16, |v| v),
            DataType::Int32 => read!(Int32Builder::new(), i32, |v| v),
            DataType::Int64 => read!(Int64Builder::new(), i64, |v| v),
            DataType::Float32 => read!(Float32Builder::new(), f32, |v| v),
            DataType::Float64 => read!(Float64Builder::new(), f64, |v| v),
            DataType::Boolean => read!(BooleanBuilder::new(), bool, |v| v),
            DataType::Utf8 => read!(StringBuilder::new(), &str, |v| v),
            DataType::Binary => read!(BinaryBuilder::new(), &[u8], |v| v),
            DataType::Date32 => read!(Date32Builder::new(), Days, |v| v.0),
            DataType::Timestamp(_, zone) => {
                let builder = TimestampMicrosecondBuilder::new().with_timezone_opt(zone.clone());
                read!(builder, Micros, |v| v.0)
            }
            DataType::Decimal128(precision, scale) => {
                let mut builder = Decimal128Builder::new()
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| error(column, &e))?;
                for row in rows {
                    let text: Option<&str> = row.try_get(index).map_err(|e| error(column, &e))?;
                    match text {
                        Some(text) => builder.append_value(
                            decimal_from_text(text, *scale).map_err(|e| error(column, &e))?,
                        ),
                        None => builder.append_null(),
                    }
                }
                Arc::new(builder.finish()) as ArrayRef
            }
            other => {
                return Err(error(column, &format!("unexpected type {other}")));
            }
        };
        arrays.push(array);
    }
    if columns.is_empty() {
        return Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            vec![],
            &datafusion::arrow::record_batch::RecordBatchOptions::new()
                .with_row_count(Some(rows.len())),
        )?);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_text_reads_exactly_or_not_at_all() {
        assert_eq!(decimal_from_text("-12.34", 3), Ok(-12340));
        assert_eq!(decimal_from_text("0", 2), Ok(0));
        assert_eq!(decimal_from_text(".5", 1), Ok(5));
        assert_eq!(
            decimal_from_text("99999999999999999999999999999999999999", 0),
            Ok(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert!(decimal_from_text("NaN", 2).is_err());
        assert!(decimal_from_text("1.234", 2).is_err());
        assert!(decimal_from_text("-", 2).is_err());
    }

    #[test]
    fn numeric_modifiers_decode_precision_and_signed_scale() {
        let modifier = |precision: i32, scale: i32| ((precision << 16) | (scale & 0x7ff)) + 4;
        assert_eq!(
            arrow_type("numeric", modifier(12, 2)),
            Some((DataType::Decimal128(12, 2), true))
        );
        assert_eq!(arrow_type("numeric", modifier(10, -2)), None);
        assert_eq!(arrow_type("numeric", modifier(2, 5)), None);
        assert_eq!(arrow_type("numeric", modifier(39, 0)), None);
        assert_eq!(arrow_type("numeric", -1), None);
    }

    #[test]
    fn text_filters_go_to_the_server_only_as_equality_of_text() {
        let column = |name: &str, pg_type: &str| Column {
            name: name.to_owned(),
            data_type: DataType::Utf8,
            as_text: false,
            pg_type: pg_type.to_owned(),
        };
        let table = PostgresTable {
            connection: Connection::from_params(&BTreeMap::new()).unwrap(),
            relation: "\"public\".\"t\"".to_owned(),
            columns: vec![column("t", "text"), column("c", "bpchar")],
            schema: Arc::new(Schema::new(vec![
                Field::new("t", DataType::Utf8, true),
                Field::new("c", DataType::Utf8, true),
            ])),
        };
        let compare = |name: &str, op: Operator| {
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(datafusion::logical_expr::col(name)),
                op,
                Box::new(datafusion::logical_expr::lit("abc")),
            ))
        };
        assert_eq!(
            table.filter_sql(&compare("t", Operator::Eq)),
            Some("\"t\" = 'abc'".to_owned())
        );
        assert_eq!(table.filter_sql(&compare("t", Operator::NotEq)), None);
        assert_eq!(table.filter_sql(&compare("t", Operator::Gt)), None);
        assert_eq!(table.filter_sql(&compare("c", Operator::Eq)), None);
    }

    #[test]
    fn only_literals_with_the_same_meaning_are_written() {
        let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(
            literal_sql(
                &timestamp,
                &ScalarValue::TimestampMicrosecond(Some(1_500_000), None)
            ),
            Some("'1970-01-01 00:00:01.500000'::timestamp".to_owned())
        );
        // Year 0 and beyond 9999 are written differently by the two: not pushed.
        assert_eq!(
            literal_sql(
                &timestamp,
                &ScalarValue::TimestampMicrosecond(Some(-62_200_000_000_000_000), None)
            ),
            None
        );
        assert_eq!(
            literal_sql(&DataType::Utf8, &ScalarValue::Utf8(Some("it's".into()))),
            Some("'it''s'".to_owned())
        );
        assert_eq!(
            literal_sql(&DataType::Utf8, &ScalarValue::Utf8(Some("a\0".into()))),
            None
        );
        assert_eq!(
            literal_sql(&DataType::Float64, &ScalarValue::Float64(Some(0.0))),
            None
        );
        assert_eq!(
            literal_sql(&DataType::Int32, &ScalarValue::Int64(Some(i64::MIN))),
            Some(i64::MIN.to_string())
        );
    }
}
