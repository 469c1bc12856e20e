//! Plain data that crosses the plugin boundary, with conversions to the Rust-side types.

use std::borrow::Cow;
use std::path::PathBuf;

use abi_stable::StableAbi;
use abi_stable::std_types::{RArc, ROption, RString, RVec, Tuple2};
use datafusion_ffi::arrow_wrappers::WrappedSchema;
use datafusion_ffi::execution_plan::FFI_ExecutionPlan;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::record_batch_stream::FFI_RecordBatchStream;
use datafusion_ffi::table_provider::FFI_TableProvider;
use datafusion_ffi::table_provider_factory::FFI_TableProviderFactory;

use crate::contract::accelerator::{
    AccelerationLayout, AccelerationSourceSpec, BootstrapStatus, FilePathError, Mode, ParameterSpec,
};

/// What an engine says about itself: answered once, right after its library is loaded.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiEngineDescription {
    pub name: RString,
    pub prefix: RString,
    pub parameters: RVec<FfiParameterSpec>,
    pub valid_file_extensions: RVec<RString>,
}

/// [`ParameterSpec`] across the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiParameterSpec {
    pub name: RString,
    pub description: RString,
    pub default: ROption<RString>,
    pub required: bool,
}

impl From<&ParameterSpec> for FfiParameterSpec {
    fn from(p: &ParameterSpec) -> Self {
        Self {
            name: p.name.as_ref().into(),
            description: p.description.as_ref().into(),
            default: p.default.as_deref().map(RString::from).into(),
            required: p.required,
        }
    }
}

impl From<&FfiParameterSpec> for ParameterSpec {
    fn from(p: &FfiParameterSpec) -> Self {
        Self {
            name: Cow::Owned(p.name.to_string()),
            description: Cow::Owned(p.description.to_string()),
            default: p
                .default
                .as_ref()
                .map(|d| Cow::Owned(d.to_string()))
                .into_option(),
            required: p.required,
        }
    }
}

/// [`Mode`] across the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfiMode {
    Memory,
    File,
}

/// [`AccelerationSourceSpec`] across the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiAccelerationSource {
    pub dataset_name: RString,
    pub mode: FfiMode,
    pub params: RVec<Tuple2<RString, RString>>,
    pub location: ROption<RString>,
    pub data_directory: RString,
}

impl From<&AccelerationSourceSpec> for FfiAccelerationSource {
    fn from(s: &AccelerationSourceSpec) -> Self {
        let mut params: Vec<_> = s.params.iter().collect();
        params.sort();
        Self {
            dataset_name: s.dataset_name.as_str().into(),
            mode: match s.mode {
                Mode::Memory => FfiMode::Memory,
                Mode::File => FfiMode::File,
            },
            params: params
                .into_iter()
                .map(|(k, v)| Tuple2(k.as_str().into(), v.as_str().into()))
                .collect(),
            location: s.location.as_deref().map(RString::from).into(),
            data_directory: s.data_directory.to_string_lossy().as_ref().into(),
        }
    }
}

impl From<&FfiAccelerationSource> for AccelerationSourceSpec {
    fn from(s: &FfiAccelerationSource) -> Self {
        Self {
            dataset_name: s.dataset_name.to_string(),
            mode: match s.mode {
                FfiMode::Memory => Mode::Memory,
                FfiMode::File => Mode::File,
            },
            params: s
                .params
                .iter()
                .map(|Tuple2(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            location: s.location.as_ref().map(|l| l.to_string()).into_option(),
            data_directory: PathBuf::from(s.data_directory.as_str()),
        }
    }
}

/// A `PARTITIONED BY` expression: its name and the expression as a datafusion-proto
/// `LogicalExprNode`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiPartitionedBy {
    pub name: RString,
    pub expression_proto: RVec<u8>,
}

/// [`AccelerationLayout`] across the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum FfiAccelerationLayout {
    File(RString),
    Directory(RString),
    None,
}

impl From<&AccelerationLayout> for FfiAccelerationLayout {
    fn from(l: &AccelerationLayout) -> Self {
        match l {
            AccelerationLayout::File(p) => Self::File(p.to_string_lossy().as_ref().into()),
            AccelerationLayout::Directory(p) => {
                Self::Directory(p.to_string_lossy().as_ref().into())
            }
            AccelerationLayout::None => Self::None,
        }
    }
}

impl From<FfiAccelerationLayout> for AccelerationLayout {
    fn from(l: FfiAccelerationLayout) -> Self {
        match l {
            FfiAccelerationLayout::File(p) => Self::File(p.as_str().into()),
            FfiAccelerationLayout::Directory(p) => Self::Directory(p.as_str().into()),
            FfiAccelerationLayout::None => Self::None,
        }
    }
}

/// [`BootstrapStatus`] across the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum FfiBootstrapStatus {
    Bootstrapped(RString),
    AlreadyInitialized,
    NotBootstrapped,
}

impl From<BootstrapStatus> for FfiBootstrapStatus {
    fn from(s: BootstrapStatus) -> Self {
        match s {
            BootstrapStatus::Bootstrapped { snapshot } => Self::Bootstrapped(snapshot.into()),
            BootstrapStatus::AlreadyInitialized => Self::AlreadyInitialized,
            BootstrapStatus::NotBootstrapped => Self::NotBootstrapped,
        }
    }
}

impl From<FfiBootstrapStatus> for BootstrapStatus {
    fn from(s: FfiBootstrapStatus) -> Self {
        match s {
            FfiBootstrapStatus::Bootstrapped(snapshot) => Self::Bootstrapped {
                snapshot: snapshot.into(),
            },
            FfiBootstrapStatus::AlreadyInitialized => Self::AlreadyInitialized,
            FfiBootstrapStatus::NotBootstrapped => Self::NotBootstrapped,
        }
    }
}

/// [`FilePathError`] across the boundary.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone)]
pub enum FfiFilePathError {
    NotFileMode,
    InvalidExtension {
        path: RString,
        found: RString,
        expected: RVec<RString>,
    },
    Other(RString),
}

impl From<FilePathError> for FfiFilePathError {
    fn from(e: FilePathError) -> Self {
        match e {
            FilePathError::NotFileMode => Self::NotFileMode,
            FilePathError::InvalidExtension {
                path,
                found,
                expected,
            } => Self::InvalidExtension {
                path: path.into(),
                found: found.into(),
                expected: expected.into_iter().map(RString::from).collect(),
            },
            FilePathError::Other(m) => Self::Other(m.into()),
        }
    }
}

impl From<FfiFilePathError> for FilePathError {
    fn from(e: FfiFilePathError) -> Self {
        match e {
            FfiFilePathError::NotFileMode => Self::NotFileMode,
            FfiFilePathError::InvalidExtension {
                path,
                found,
                expected,
            } => Self::InvalidExtension {
                path: path.into(),
                found: found.into(),
                expected: expected.into_iter().map(String::from).collect(),
            },
            FfiFilePathError::Other(m) => Self::Other(m.into()),
        }
    }
}

/// datafusion-ffi's logical codec, carried opaquely. The host makes it from its own task
/// context; the engine's table providers decode filters with it.
#[repr(transparent)]
#[derive(StableAbi)]
pub struct FfiLogicalCodec(#[sabi(unsafe_opaque_field)] pub FFI_LogicalExtensionCodec);

/// datafusion-ffi's table provider factory, carried opaquely: `CREATE EXTERNAL TABLE` crosses
/// through its `create`, encoded by datafusion-proto, and the table comes back as an
/// `FFI_TableProvider`.
#[repr(transparent)]
#[derive(StableAbi)]
pub struct FfiTableFactory(#[sabi(unsafe_opaque_field)] pub FFI_TableProviderFactory);

/// datafusion-ffi's table provider, carried opaquely: the host hands a table back to the
/// library that created it (which finds its own provider behind it).
#[repr(transparent)]
#[derive(StableAbi)]
pub struct FfiTableProvider(#[sabi(unsafe_opaque_field)] pub FFI_TableProvider);

/// datafusion-ffi's execution plan, carried opaquely: a plugin table's scan comes back as one,
/// and the host hands it back to the library to execute (ABI 1.3).
#[repr(transparent)]
#[derive(StableAbi)]
pub struct FfiExecutionPlan(#[sabi(unsafe_opaque_field)] pub FFI_ExecutionPlan);

/// What a scan of a plugin table asks for (ABI 1.3): the columns, the filters the table
/// accepted (a datafusion-proto `LogicalExprList`, decoded with the library's own functions),
/// and the row limit.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiScanRequest {
    pub projection: ROption<RVec<usize>>,
    pub filters: RVec<u8>,
    pub limit: ROption<usize>,
}

/// The query's DataFusion settings as `key = value` text (ABI 1.3), shared: the host hands
/// the same allocation over for the same settings, so the library recognises them by address
/// (see `boundary::query_settings`).
#[repr(transparent)]
#[derive(StableAbi, Clone)]
pub struct FfiQuerySettings(pub RArc<RVec<Tuple2<RString, RString>>>);

/// An Arrow schema through the C data interface, carried opaquely.
#[repr(transparent)]
#[derive(StableAbi)]
pub struct FfiSchema(#[sabi(unsafe_opaque_field)] pub WrappedSchema);

/// datafusion-ffi's record batch stream, carried opaquely; it polls on the engine's runtime.
#[repr(transparent)]
#[derive(StableAbi)]
pub struct FfiRecordBatchStream(#[sabi(unsafe_opaque_field)] pub FFI_RecordBatchStream);

/// Where a table lives for SQL (see [`crate::SqlTable`]).
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiSqlTable {
    pub context: RString,
    pub table: RString,
}
