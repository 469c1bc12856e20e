//! The `extern "C"` functions behind an engine library's root module.
//!
//! Rules every function here follows:
//! - no panic unwinds out of it: synchronous work runs under `catch_unwind`, asynchronous work
//!   runs as a task on the plugin runtime, whose join error reports a panic;
//! - engine code runs on the plugin's own runtime, never on whatever thread polls the future;
//! - errors are plain text; the host prefixes them with the engine name and the call.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{ROption, RResult, RString, RVec};
use async_ffi::{FfiFuture, FutureExt};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::execution::TaskContextProvider;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_ffi::execution_plan::FFI_ExecutionPlan;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::record_batch_stream::FFI_RecordBatchStream;
use datafusion_ffi::table_provider_factory::FFI_TableProviderFactory;
use datafusion_proto::logical_plan::from_proto::{parse_expr, parse_exprs};
use datafusion_proto::logical_plan::{DefaultLogicalExtensionCodec, LogicalExtensionCodec};
use datafusion_proto::protobuf::{LogicalExprList, LogicalExprNode};
use prost::Message;

use super::{AcceleratorModule, AcceleratorModuleRef};
use crate::boundary::guard::{GuardedTableProvider, guard_stream};
use crate::boundary::panic_message;
use crate::boundary::plugin::{ExportedEngine, Plugin, plugin};
use crate::boundary::table_factory::EngineTableFactory;
use crate::boundary::types::{
    FfiAccelerationLayout, FfiAccelerationSource, FfiBootstrapStatus, FfiEngineDescription,
    FfiExecutionPlan, FfiFilePathError, FfiLogicalCodec, FfiParameterSpec, FfiPartitionedBy,
    FfiQuerySettings, FfiRecordBatchStream, FfiScanRequest, FfiSchema, FfiSqlTable,
    FfiTableFactory, FfiTableProvider,
};
use crate::contract::accelerator::{
    AccelerationSourceSpec, DataAccelerator, FileRelease, PartitionedBy,
};

/// Builds the function table for engine `E` (called once, by the entry symbol's constructor).
pub fn root_module<E: ExportedEngine>() -> AcceleratorModuleRef {
    AcceleratorModule {
        describe: describe::<E>,
        create_table_factory: create_table_factory::<E>,
        acceleration_layout: acceleration_layout::<E>,
        init: init::<E>,
        is_initialized: is_initialized::<E>,
        file_path: file_path::<E>,
        shutdown: shutdown::<E>,
        sql_dialect: sql_dialect::<E>,
        sql_table: sql_table::<E>,
        execute_sql: execute_sql::<E>,
        release_file: release_file::<E>,
        stop_runtime: stop_runtime::<E>,
        scan_table: scan_table::<E>,
        execute_scan: execute_scan::<E>,
    }
    .leak_into_prefix()
}

extern "C" fn describe<E: ExportedEngine>() -> RResult<FfiEngineDescription, RString> {
    run_sync::<E, _>("describe", |p| {
        Ok(FfiEngineDescription {
            name: p.engine.name().into(),
            prefix: p.engine.prefix().into(),
            parameters: p
                .engine
                .parameters()
                .iter()
                .map(FfiParameterSpec::from)
                .collect(),
            valid_file_extensions: p
                .engine
                .valid_file_extensions()
                .into_iter()
                .map(RString::from)
                .collect(),
        })
    })
}

extern "C" fn create_table_factory<E: ExportedEngine>(
    source: ROption<FfiAccelerationSource>,
    partition_by: RVec<FfiPartitionedBy>,
    codec: FfiLogicalCodec,
) -> RResult<FfiTableFactory, RString> {
    run_sync::<E, _>("create_table_factory", move |p| {
        let partition_by = decode_partitions(p, &partition_by)?;
        let factory = EngineTableFactory {
            engine: Arc::clone(&p.engine),
            source: source
                .into_option()
                .map(|s| AccelerationSourceSpec::from(&s)),
            partition_by,
            runtime: p.handle.clone(),
            runtime_env: Arc::clone(&p.runtime_env),
        };
        // The host's codec, with this library's task context to decode filters with (see
        // `Plugin::task_ctx`).
        let host_codec: Arc<dyn LogicalExtensionCodec> = (&codec.0).into();
        let task_ctx_provider: Arc<dyn TaskContextProvider> = p.task_ctx.clone();
        let codec =
            FFI_LogicalExtensionCodec::new(host_codec, Some(p.handle.clone()), &task_ctx_provider);
        Ok(FfiTableFactory(
            FFI_TableProviderFactory::new_with_ffi_codec(
                Arc::new(factory),
                Some(p.handle.clone()),
                codec,
            ),
        ))
    })
}

fn decode_partitions(p: &Plugin, parts: &[FfiPartitionedBy]) -> Result<Vec<PartitionedBy>, String> {
    parts
        .iter()
        .map(|part| {
            let node = LogicalExprNode::decode(part.expression_proto.as_slice())
                .map_err(|e| format!("partition `{}`: undecodable expression: {e}", part.name))?;
            let expression: Expr = parse_expr(
                &node,
                &p.task_ctx.task_ctx(),
                &DefaultLogicalExtensionCodec {},
            )
            .map_err(|e| format!("partition `{}`: {e}", part.name))?;
            Ok(PartitionedBy {
                name: part.name.to_string(),
                expression,
            })
        })
        .collect()
}

extern "C" fn acceleration_layout<E: ExportedEngine>(
    source: &FfiAccelerationSource,
) -> RResult<FfiAccelerationLayout, RString> {
    let spec = AccelerationSourceSpec::from(source);
    run_sync::<E, _>("acceleration_layout", |p| {
        Ok(FfiAccelerationLayout::from(
            &p.engine.acceleration_layout(&spec),
        ))
    })
}

extern "C" fn is_initialized<E: ExportedEngine>(
    source: &FfiAccelerationSource,
) -> RResult<bool, RString> {
    let spec = AccelerationSourceSpec::from(source);
    run_sync::<E, _>("is_initialized", |p| Ok(p.engine.is_initialized(&spec)))
}

extern "C" fn file_path<E: ExportedEngine>(
    source: &FfiAccelerationSource,
) -> RResult<RString, FfiFilePathError> {
    let spec = AccelerationSourceSpec::from(source);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let p = plugin::<E>().map_err(crate::FilePathError::Other)?;
        p.engine.file_path(&spec)
    }));
    match outcome {
        Ok(Ok(path)) => RResult::ROk(path.into()),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => RResult::RErr(FfiFilePathError::Other(
            format!("panicked in file_path: {}", panic_message(&*payload)).into(),
        )),
    }
}

extern "C" fn init<E: ExportedEngine>(
    source: FfiAccelerationSource,
) -> FfiFuture<RResult<FfiBootstrapStatus, RString>> {
    let spec = AccelerationSourceSpec::from(&source);
    run_async::<E, _, _>("init", move |engine| async move {
        engine
            .init(&spec)
            .await
            .map(FfiBootstrapStatus::from)
            .map_err(|e| e.to_string())
    })
}

extern "C" fn shutdown<E: ExportedEngine>() -> FfiFuture<RResult<(), RString>> {
    run_async::<E, _, _>("shutdown", |engine| async move {
        engine.shutdown().await.map_err(|e| e.to_string())
    })
}

extern "C" fn sql_dialect<E: ExportedEngine>() -> ROption<RString> {
    let dialect = run_sync::<E, _>("sql_dialect", |p| {
        Ok(p.engine
            .sql_engine()
            .map(|sql| RString::from(sql.dialect())))
    });
    match dialect {
        RResult::ROk(Some(dialect)) => ROption::RSome(dialect),
        _ => ROption::RNone,
    }
}

/// `table` came from this library's datafusion-ffi, which hands back the provider behind it:
/// the SDK's guard around the engine's own table.
extern "C" fn sql_table<E: ExportedEngine>(table: &FfiTableProvider) -> ROption<FfiSqlTable> {
    let found = run_sync::<E, _>("sql_table", |p| {
        let Some(sql) = p.engine.sql_engine() else {
            return Ok(None);
        };
        let provider: Arc<dyn TableProvider> = (&table.0).into();
        let Some(guarded) = provider.downcast_ref::<GuardedTableProvider>() else {
            return Ok(None);
        };
        Ok(sql.sql_table(guarded.inner().as_ref()))
    });
    match found {
        RResult::ROk(Some(t)) => ROption::RSome(FfiSqlTable {
            context: t.context.into(),
            table: t.table.into(),
        }),
        _ => ROption::RNone,
    }
}

extern "C" fn execute_sql<E: ExportedEngine>(
    context: RString,
    sql: RString,
    schema: FfiSchema,
) -> FfiFuture<RResult<FfiRecordBatchStream, RString>> {
    let schema: SchemaRef = schema.0.into();
    run_async::<E, _, _>("execute_sql", move |engine| async move {
        let name: Arc<str> = engine.name().into();
        let sql_engine = engine
            .sql_engine()
            .ok_or_else(|| format!("engine `{name}` does not run SQL statements"))?;
        let stream = sql_engine
            .execute_sql(&context, &sql, schema)
            .await
            .map_err(|e| e.to_string())?;
        let runtime = plugin::<E>()?.handle.clone();
        Ok(FfiRecordBatchStream(FFI_RecordBatchStream::new(
            guard_stream(stream, &name),
            Some(runtime),
        )))
    })
}

extern "C" fn release_file<E: ExportedEngine>(
    file: RString,
    wait_ms: u64,
) -> FfiFuture<RResult<u8, RString>> {
    run_async::<E, _, _>("release_file", move |engine| async move {
        let wait = std::time::Duration::from_millis(wait_ms);
        let released = engine
            .release_file(std::path::Path::new(file.as_str()), wait)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match released {
            FileRelease::Released => 0,
            FileRelease::StillOpen => 1,
            FileRelease::NotTracked => 2,
        })
    })
}

extern "C" fn stop_runtime<E: ExportedEngine>() -> bool {
    // Never started: nothing to stop (and no reason to start it now).
    E::slot().started().is_some_and(Plugin::stop)
}

/// `table` came from this library's datafusion-ffi: the SDK's guard around an engine table.
/// The filters are decoded with this library's own functions, the session is made from the
/// host's settings once per distinct settings; the engine's `scan` runs on the plugin runtime
/// under the guard.
extern "C" fn scan_table<E: ExportedEngine>(
    table: &FfiTableProvider,
    request: FfiScanRequest,
    settings: FfiQuerySettings,
) -> FfiFuture<RResult<FfiExecutionPlan, RString>> {
    let prepared = run_sync::<E, _>("scan_table", |p| {
        let provider: Arc<dyn TableProvider> = (&table.0).into();
        if provider.downcast_ref::<GuardedTableProvider>().is_none() {
            return Err("the table handed to scan_table was not created by this library".into());
        }
        let filters = match request.filters.is_empty() {
            true => Vec::new(),
            false => {
                let list = LogicalExprList::decode(request.filters.as_slice())
                    .map_err(|e| format!("undecodable filters: {e}"))?;
                parse_exprs(
                    &list.expr,
                    p.task_ctx.task_ctx().as_ref(),
                    &DefaultLogicalExtensionCodec {},
                )
                .map_err(|e| format!("filters: {e}"))?
            }
        };
        Ok((p, provider, filters, p.query_contexts.session(&settings)))
    });
    let projection: Option<Vec<usize>> = request.projection.into_option().map(RVec::into_vec);
    let limit = request.limit.into_option();
    async move {
        let (p, provider, filters, session) = match prepared {
            RResult::ROk(prepared) => prepared,
            RResult::RErr(e) => return RResult::RErr(e),
        };
        // GuardedTableProvider::scan runs the engine's scan on the plugin runtime and turns a
        // panic there into an error.
        match provider
            .scan(session.as_ref(), projection.as_ref(), &filters, limit)
            .await
        {
            Ok(plan) => RResult::ROk(FfiExecutionPlan(FFI_ExecutionPlan::new(
                plan,
                Some(p.handle.clone()),
            ))),
            Err(e) => RResult::RErr(e.to_string().into()),
        }
    }
    .into_ffi()
}

/// `plan` came from [`scan_table`] of this library: the SDK's guard around an engine plan,
/// whose `execute` contains panics. It executes with a task context made from the host's
/// settings once per distinct settings, inside the plugin runtime (a stream it starts polls
/// there).
extern "C" fn execute_scan<E: ExportedEngine>(
    plan: &FfiExecutionPlan,
    partition: usize,
    settings: FfiQuerySettings,
) -> RResult<FfiRecordBatchStream, RString> {
    run_sync::<E, _>("execute_scan", |p| {
        if (plan.0.library_marker_id)() != datafusion_ffi::get_library_marker_id() {
            return Err("the plan handed to execute_scan was not made by this library".into());
        }
        let local: Arc<dyn ExecutionPlan> =
            Arc::<dyn ExecutionPlan>::try_from(&plan.0).map_err(|e| e.to_string())?;
        let task = p.query_contexts.task(&settings);
        let _entered = p.handle.enter();
        let stream = local.execute(partition, task).map_err(|e| e.to_string())?;
        Ok(FfiRecordBatchStream(FFI_RecordBatchStream::new(
            stream,
            Some(p.handle.clone()),
        )))
    })
}

/// Runs synchronous engine code, turning a panic into an error.
fn run_sync<E: ExportedEngine, T>(
    call: &str,
    f: impl FnOnce(&'static Plugin) -> Result<T, String>,
) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(|| plugin::<E>().and_then(f))) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(message)) => RResult::RErr(message.into()),
        Err(payload) => {
            RResult::RErr(format!("panicked in {call}: {}", panic_message(&*payload)).into())
        }
    }
}

/// Runs asynchronous engine code as a task on the plugin runtime; a panic in it becomes an
/// error.
fn run_async<E, T, Fut>(
    call: &'static str,
    f: impl FnOnce(Arc<dyn DataAccelerator>) -> Fut + Send + 'static,
) -> FfiFuture<RResult<T, RString>>
where
    E: ExportedEngine,
    T: Send + 'static,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    async move {
        let p = match plugin::<E>() {
            Ok(p) => p,
            Err(message) => return RResult::RErr(message.into()),
        };
        let engine = Arc::clone(&p.engine);
        match p.handle.spawn(async move { f(engine).await }).await {
            Ok(Ok(value)) => RResult::ROk(value),
            Ok(Err(message)) => RResult::RErr(message.into()),
            Err(join) if join.is_panic() => RResult::RErr(
                format!("panicked in {call}: {}", panic_message(&*join.into_panic())).into(),
            ),
            Err(_) => RResult::RErr(format!("{call} was cancelled").into()),
        }
    }
    .into_ffi()
}
