//! Arrow Flight SQL on arrow-flight's `FlightSqlService`: statements, prepared statements with
//! parameters, updates, the catalog listings (with or without a catalog filter), table types
//! and `GetSqlInfo`. Results stream batch by batch as DataFusion produces them.
//!
//! Tickets carry the statement itself (or the prepared statement's handle), so `DoGet` plans
//! again at the moment it runs: a table handed to a newer engine generation between
//! `GetFlightInfo` and `DoGet` is read from wherever it lives then.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, SqlNullOrdering,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::TableType;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::metrics::Protocol;
use super::query::{ObservedStream, Queries, QueryError};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// Prepared statements a client may keep open at once (closed ones free their slot).
const MAX_PREPARED: usize = 10_000;

/// A prepared statement: its text and the parameters bound last.
struct Prepared {
    sql: String,
    /// The placeholders in order (`$1`, `$2`, or names).
    placeholders: Vec<String>,
    parameters: Option<ParamValues>,
}

/// The Flight SQL service.
pub struct FlightSql {
    queries: Arc<Queries>,
    prepared: Mutex<HashMap<u64, Prepared>>,
    next_handle: AtomicU64,
    sql_info: SqlInfoData,
}

impl FlightSql {
    pub fn new(queries: Arc<Queries>) -> Self {
        let sql_info = sql_info(queries.allow_writes());
        // Handles differ from one server run to the next, so a stale handle is not mistaken
        // for a new statement.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self {
            queries,
            prepared: Mutex::default(),
            next_handle: AtomicU64::new(start),
            sql_info,
        }
    }

    fn prepared(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Prepared>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The statement and parameters behind a handle.
    fn lookup(&self, handle: &[u8]) -> Result<(String, Vec<String>, Option<ParamValues>), Status> {
        let id = handle_id(handle)?;
        let prepared = self.prepared();
        let statement = prepared.get(&id).ok_or_else(|| {
            Status::not_found(
                "no open prepared statement with this handle (closed, or made by an earlier \
                 server run): prepare it again",
            )
        })?;
        Ok((
            statement.sql.clone(),
            statement.placeholders.clone(),
            statement.parameters.clone(),
        ))
    }

    async fn run(
        &self,
        sql: &str,
        parameters: Option<ParamValues>,
    ) -> Result<ObservedStream, Status> {
        let planned = self
            .queries
            .plan(sql, Protocol::Flight)
            .await
            .map_err(status)?;
        self.queries
            .run(planned, parameters, Protocol::Flight)
            .await
            .map_err(status)
    }

    /// Runs a statement for its effect and returns the rows it changed.
    async fn update(&self, sql: &str, parameters: Option<ParamValues>) -> Result<i64, Status> {
        let batches: Vec<RecordBatch> = self
            .run(sql, parameters)
            .await?
            .try_collect()
            .await
            .map_err(|e| status(QueryError::from_datafusion(e)))?;
        Ok(changed_rows(&batches))
    }

    /// Every schema of every catalog, sorted by catalog then schema name.
    fn schemas(&self) -> Vec<(String, String, Arc<dyn SchemaProvider>)> {
        let context = self.queries.host().context();
        let mut schemas = Vec::new();
        let mut catalogs = context.catalog_names();
        catalogs.sort();
        for catalog_name in catalogs {
            let Some(catalog) = context.catalog(&catalog_name) else {
                continue;
            };
            let mut names = catalog.schema_names();
            names.sort();
            for schema_name in names {
                if let Some(schema) = catalog.schema(&schema_name) {
                    schemas.push((catalog_name.clone(), schema_name, schema));
                }
            }
        }
        schemas
    }

    /// Every table of [`Self::schemas`], sorted by name within its schema.
    async fn tables(&self) -> Vec<(String, String, String, Arc<dyn TableProvider>)> {
        let mut listing = Vec::new();
        for (catalog_name, schema_name, schema) in self.schemas() {
            let mut tables = schema.table_names();
            tables.sort();
            for table_name in tables {
                // A table dropped meanwhile, or one that fails to open, is left out.
                if let Ok(Some(table)) = schema.table(&table_name).await {
                    listing.push((catalog_name.clone(), schema_name.clone(), table_name, table));
                }
            }
        }
        listing
    }
}

/// What `GetSqlInfo` answers.
fn sql_info(allow_writes: bool) -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "accel");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_VERSION);
    info.append(SqlInfo::FlightSqlServerReadOnly, !allow_writes);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, allow_writes);
    info.append(SqlInfo::SqlDdlTable, allow_writes);
    // DataFusion folds unquoted identifiers to lower case and keeps quoted ones as written.
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    info.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // ASC puts NULLs last and DESC first: NULL sorts as the highest value.
    info.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    info.append(SqlInfo::SqlSearchStringEscape, "\\");
    info.append(SqlInfo::SqlSchemaTerm, "schema");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    info.append(SqlInfo::SqlSupportsColumnAliasing, true);
    info.append(SqlInfo::SqlNullPlusNullIsNull, true);
    info.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    info.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    info.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    info.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.build()
        .expect("the SqlInfo values above have the types the protocol gives them")
}

/// The Arrow major version the server encodes with.
const ARROW_VERSION: &str = "59";

fn handle_bytes(id: u64) -> prost::bytes::Bytes {
    prost::bytes::Bytes::copy_from_slice(&id.to_be_bytes())
}

fn handle_id(handle: &[u8]) -> Result<u64, Status> {
    let bytes: [u8; 8] = handle.try_into().map_err(|_| {
        Status::invalid_argument(format!(
            "a prepared statement handle is 8 bytes, this one is {}",
            handle.len()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A query error as a gRPC status.
fn status(error: QueryError) -> Status {
    match error {
        QueryError::Refused(m) => Status::permission_denied(m),
        QueryError::Invalid(m) => Status::invalid_argument(m),
        QueryError::Failed(m) => Status::internal(m),
    }
}

fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e| Status::internal(format!("encoding a schema: {e}")))?;
    Ok(bytes)
}

/// A `FlightInfo` whose one endpoint's ticket is `command`.
fn flight_info(
    schema: &Schema,
    command: Any,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding a schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(command.encode_to_vec())))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A query's rows as Flight data, one message per batch (large batches split by the encoder).
fn encode(stream: ObservedStream) -> DoGetStream {
    let schema = datafusion::physical_plan::RecordBatchStream::schema(&stream);
    let batches = stream.map_err(|e| FlightError::ExternalError(Box::new(e)));
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(flight_error_status);
    Box::pin(encoded)
}

/// One batch (a catalog listing) as Flight data.
fn encode_batch(batch: RecordBatch) -> DoGetStream {
    let schema = batch.schema();
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { Ok(batch) }))
        .map_err(flight_error_status);
    Box::pin(encoded)
}

fn flight_error_status(error: FlightError) -> Status {
    match error {
        FlightError::ExternalError(inner) => {
            match inner.downcast::<datafusion::error::DataFusionError>() {
                Ok(e) => status(QueryError::from_datafusion(*e)),
                Err(other) => Status::internal(other.to_string()),
            }
        }
        FlightError::Tonic(s) => *s,
        other => Status::internal(other.to_string()),
    }
}

fn metadata_error(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("building a catalog listing: {e}"))
}

/// `INSERT` answers one row with the count of rows written; other statements change none
/// that are counted.
fn changed_rows(batches: &[RecordBatch]) -> i64 {
    let [batch] = batches else { return 0 };
    match batch.columns() {
        [column] if batch.num_rows() == 1 && batch.schema().field(0).name() == "count" => column
            .as_any()
            .downcast_ref::<UInt64Array>()
            .filter(|c| !c.is_null(0))
            .map(|c| i64::try_from(c.value(0)).unwrap_or(i64::MAX))
            .unwrap_or(0),
        _ => 0,
    }
}

/// The parameters a client bound: one row, its columns in the placeholders' order (`$1` is
/// the first column); named placeholders are matched by column name.
async fn read_parameters(
    data: PeekableFlightDataStream,
    placeholders: &[String],
) -> Result<Option<ParamValues>, Status> {
    let batches: Vec<RecordBatch> =
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            // The peekable stream itself: its first message (the schema) was peeked at.
            data.map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("reading the bound parameters: {e}")))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    if rows != 1 {
        return Err(Status::invalid_argument(format!(
            "bind one row of parameters per execution, found {rows} rows"
        )));
    }
    let values: Vec<ScalarValue> = batch
        .columns()
        .iter()
        .map(|column| ScalarValue::try_from_array(column, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| Status::invalid_argument(format!("reading a bound parameter: {e}")))?;
    if values.len() != placeholders.len() {
        return Err(Status::invalid_argument(format!(
            "the statement has {} parameter(s) ({}), {} were bound",
            placeholders.len(),
            placeholders.join(", "),
            values.len()
        )));
    }
    let numbered = placeholders.iter().all(|p| {
        p.strip_prefix('$')
            .is_some_and(|n| n.parse::<usize>().is_ok())
    });
    if numbered {
        return Ok(Some(ParamValues::from(values)));
    }
    let named: Vec<(String, ScalarValue)> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().trim_start_matches('$').to_owned())
        .zip(values)
        .collect();
    Ok(Some(ParamValues::from(named)))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    /// Nothing to exchange: the API key travels in every request's `authorization` header
    /// (checked before any method runs).
    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        Ok(Response::new(Box::pin(futures::stream::once(async {
            Ok(response)
        }))))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let planned = self
            .queries
            .plan(&query.query, Protocol::Flight)
            .await
            .map_err(status)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        flight_info(&planned.schema(), ticket.as_any(), request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let sql = std::str::from_utf8(&ticket.statement_handle).map_err(|_| {
            Status::invalid_argument("the ticket is not a statement of this server")
        })?;
        Ok(Response::new(encode(self.run(sql, None).await?)))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.update(&command.query, None).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let planned = self
            .queries
            .plan(&query.query, Protocol::Flight)
            .await
            .map_err(status)?;
        let parameters = planned.parameters().map_err(status)?;
        let parameter_schema = Schema::new(
            parameters
                .iter()
                .map(|(id, data_type)| {
                    Field::new(id, data_type.clone().unwrap_or(DataType::Null), true)
                })
                .collect::<Vec<_>>(),
        );
        let id = self.next_handle.fetch_add(1, Ordering::Relaxed);
        {
            let mut prepared = self.prepared();
            if prepared.len() >= MAX_PREPARED {
                return Err(Status::resource_exhausted(format!(
                    "{MAX_PREPARED} prepared statements are open: close some before preparing \
                     more"
                )));
            }
            prepared.insert(
                id,
                Prepared {
                    sql: query.query,
                    placeholders: parameters.into_iter().map(|(id, _)| id).collect(),
                    parameters: None,
                },
            );
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle_bytes(id),
            dataset_schema: schema_bytes(&planned.schema())?,
            parameter_schema: schema_bytes(&parameter_schema)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let (_, placeholders, _) = self.lookup(&query.prepared_statement_handle)?;
        let parameters = read_parameters(request.into_inner(), &placeholders).await?;
        let id = handle_id(&query.prepared_statement_handle)?;
        if let Some(statement) = self.prepared().get_mut(&id) {
            statement.parameters = parameters;
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (sql, _, _) = self.lookup(&query.prepared_statement_handle)?;
        let planned = self
            .queries
            .plan(&sql, Protocol::Flight)
            .await
            .map_err(status)?;
        flight_info(&planned.schema(), query.as_any(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (sql, placeholders, parameters) = self.lookup(&query.prepared_statement_handle)?;
        if !placeholders.is_empty() && parameters.is_none() {
            return Err(Status::invalid_argument(format!(
                "the prepared statement has parameters ({}) and none are bound",
                placeholders.join(", ")
            )));
        }
        Ok(Response::new(encode(self.run(&sql, parameters).await?)))
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (sql, placeholders, _) = self.lookup(&query.prepared_statement_handle)?;
        let parameters = read_parameters(request.into_inner(), &placeholders).await?;
        self.update(&sql, parameters).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let id = handle_id(&query.prepared_statement_handle)?;
        self.prepared().remove(&id);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        let mut names = self.queries.host().context().catalog_names();
        names.sort();
        for name in names {
            builder.append(name);
        }
        Ok(Response::new(encode_batch(
            builder.build().map_err(metadata_error)?,
        )))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any(), request.into_inner())
    }

    /// Every catalog's schemas; the request's catalog and pattern filter them (a request
    /// naming no catalog lists all).
    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for (catalog_name, schema_name, _) in self.schemas() {
            builder.append(catalog_name, schema_name);
        }
        Ok(Response::new(encode_batch(
            builder.build().map_err(metadata_error)?,
        )))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(&schema, query.as_any(), request.into_inner())
    }

    /// Every table of every catalog and schema; the request's filters (catalog, schema and
    /// name patterns, table types) apply, and no catalog named means all of them.
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for (catalog, schema, name, table) in self.tables().await {
            builder
                .append(
                    catalog,
                    schema,
                    name,
                    table_type_name(table.table_type()),
                    table.schema().as_ref(),
                )
                .map_err(metadata_error)?;
        }
        Ok(Response::new(encode_batch(
            builder.build().map_err(metadata_error)?,
        )))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for table_type in [TableType::Base, TableType::View, TableType::Temporary] {
            builder.append(table_type_name(table_type));
        }
        Ok(Response::new(encode_batch(
            builder.build().map_err(metadata_error)?,
        )))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        flight_info(
            self.sql_info.schema().as_ref(),
            query.as_any(),
            request.into_inner(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(metadata_error)?;
        Ok(Response::new(encode_batch(batch)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Flight SQL's names for table types.
fn table_type_name(table_type: TableType) -> &'static str {
    match table_type {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}
