//! The plugin metadata record: a fixed-layout block of bytes that every engine library embeds in
//! its own link section, so the host can read and check it from the file *without running any of
//! the library's code* (no `dlopen`).
//!
//! Layout (all integers little-endian, strings UTF-8 padded with NUL bytes):
//!
//! | offset | size | field                                   |
//! |-------:|-----:|-----------------------------------------|
//! |      0 |    8 | magic `ACCELPLG`                        |
//! |      8 |    4 | record size in bytes (this layout: 296) |
//! |     12 |    2 | plugin-api ABI major                    |
//! |     14 |    2 | plugin-api ABI minor                    |
//! |     16 |    4 | datafusion-ffi major                    |
//! |     20 |    1 | panic strategy: 1 unwind, 2 abort, 0 unknown (records before it) |
//! |     21 |    3 | reserved, zero                          |
//! |     24 |   64 | target triple                           |
//! |     88 |   64 | engine name                             |
//! |    152 |   32 | engine version (semver)                 |
//! |    184 |   96 | build info (compiler version)           |
//! |    280 |   16 | abi_stable series, e.g. `0.11` (absent from 280-byte records) |
//!
//! Fields are only ever appended: readers accept records *larger* than the size they know and
//! ignore the tail, read a field the record is too short for as absent, and refuse records
//! smaller than [`MIN_RECORD_SIZE`].

use std::fmt;

/// Name of the link section that holds the record in ELF files.
pub const SECTION_NAME: &str = ".accel_plugin";
/// Name of the section in Mach-O files (segment `__DATA`).
pub const MACHO_SECTION_NAME: &str = "__accel_plugin";
/// First eight bytes of every record.
pub const MAGIC: [u8; 8] = *b"ACCELPLG";
/// Size of the record layout described above.
pub const RECORD_SIZE: usize = 296;
/// Size of the first layout (plugin-api 1.0 and 1.1): the smallest record a reader accepts.
pub const MIN_RECORD_SIZE: usize = 280;
/// The `abi_stable` release series (semver-compatible versions) this crate's ABI is built on;
/// a unit test checks it against the linked `abi_stable`.
pub const ABI_STABLE_SERIES: &str = "0.11";

/// Major version of the plugin ABI (the accelerator module and this record). A different major
/// is never loadable.
pub const ABI_MAJOR: u16 = 1;
/// Minor version of the plugin ABI. A host loads only plugins built for its own minor: the root
/// module is an `abi_stable` prefix type that grows by a minor, and `abi_stable`'s layout check
/// refuses a module with fewer functions than the host's (measured with a 1.2 library on a 1.3
/// host), so the host refuses another minor from the metadata record, naming it. 1.1 appended
/// the optional SQL capability (`sql_dialect`, `sql_table`, `execute_sql`); 1.2 appended
/// `release_file` and `stop_runtime`; 1.3 appended `scan_table` and `execute_scan`.
pub const ABI_MINOR: u16 = 3;
/// Major version of `datafusion-ffi` this crate is built against. Pinned in the workspace
/// `Cargo.toml`; a unit test checks it against `datafusion_ffi::version()`.
pub const DATAFUSION_FFI_MAJOR: u32 = 55;
/// Target triple this crate (and so the engine linking it) was compiled for.
pub const BUILD_TARGET: &str = env!("ACCEL_BUILD_TARGET");
/// Compiler that built this crate.
pub const BUILD_RUSTC: &str = env!("ACCEL_BUILD_RUSTC");

const OFF_SIZE: usize = 8;
const OFF_ABI_MAJOR: usize = 12;
const OFF_ABI_MINOR: usize = 14;
const OFF_DF_FFI: usize = 16;
const OFF_TARGET: usize = 24;
const LEN_TARGET: usize = 64;
const OFF_NAME: usize = 88;
const LEN_NAME: usize = 64;
const OFF_VERSION: usize = 152;
const LEN_VERSION: usize = 32;
const OFF_BUILD: usize = 184;
const LEN_BUILD: usize = 96;
const OFF_PANIC: usize = 20;
const OFF_ABI_STABLE: usize = 280;
const LEN_ABI_STABLE: usize = 16;

/// How the library handles a panic. An engine built with `panic = "abort"` would turn every
/// panic the SDK contains into an abort of the host process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicStrategy {
    Unwind,
    Abort,
    /// Not recorded (a record from before the field existed).
    Unknown,
}

impl PanicStrategy {
    /// The strategy of the crate this is compiled in (as `export_accelerator!` expands into
    /// the engine's crate, the engine's).
    pub const fn of_build(unwinds: bool) -> Self {
        if unwinds {
            PanicStrategy::Unwind
        } else {
            PanicStrategy::Abort
        }
    }

    const fn code(self) -> u8 {
        match self {
            PanicStrategy::Unwind => 1,
            PanicStrategy::Abort => 2,
            PanicStrategy::Unknown => 0,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => PanicStrategy::Unwind,
            2 => PanicStrategy::Abort,
            _ => PanicStrategy::Unknown,
        }
    }
}

impl fmt::Display for PanicStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PanicStrategy::Unwind => "unwind",
            PanicStrategy::Abort => "abort",
            PanicStrategy::Unknown => "not recorded",
        })
    }
}

/// The decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginMetadata {
    pub record_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub datafusion_ffi_major: u32,
    pub target: String,
    pub engine_name: String,
    pub engine_version: String,
    pub build_info: String,
    pub panic_strategy: PanicStrategy,
    /// `None` in records from before the field existed.
    pub abi_stable_series: Option<String>,
}

impl PluginMetadata {
    /// The record an engine built right now, against this crate, would embed.
    pub fn current(engine_name: &str, engine_version: &str) -> Self {
        Self {
            record_size: RECORD_SIZE as u32,
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            datafusion_ffi_major: DATAFUSION_FFI_MAJOR,
            target: BUILD_TARGET.to_owned(),
            engine_name: engine_name.to_owned(),
            engine_version: engine_version.to_owned(),
            build_info: BUILD_RUSTC.to_owned(),
            panic_strategy: PanicStrategy::of_build(cfg!(panic = "unwind")),
            abi_stable_series: Some(ABI_STABLE_SERIES.to_owned()),
        }
    }

    /// Encodes the record (used by tests and tools that craft fixture libraries; engines use the
    /// `const` [`encode_record`] through `export_accelerator!`). Strings longer than their field are
    /// cut at the field size.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; (self.record_size as usize).max(RECORD_SIZE)];
        out[..8].copy_from_slice(&MAGIC);
        out[OFF_SIZE..OFF_SIZE + 4].copy_from_slice(&self.record_size.to_le_bytes());
        out[OFF_ABI_MAJOR..OFF_ABI_MAJOR + 2].copy_from_slice(&self.abi_major.to_le_bytes());
        out[OFF_ABI_MINOR..OFF_ABI_MINOR + 2].copy_from_slice(&self.abi_minor.to_le_bytes());
        out[OFF_DF_FFI..OFF_DF_FFI + 4].copy_from_slice(&self.datafusion_ffi_major.to_le_bytes());
        out[OFF_PANIC] = self.panic_strategy.code();
        let empty = String::new();
        let abi_stable = self.abi_stable_series.as_ref().unwrap_or(&empty);
        for (off, len, s) in [
            (OFF_TARGET, LEN_TARGET, &self.target),
            (OFF_NAME, LEN_NAME, &self.engine_name),
            (OFF_VERSION, LEN_VERSION, &self.engine_version),
            (OFF_BUILD, LEN_BUILD, &self.build_info),
            (OFF_ABI_STABLE, LEN_ABI_STABLE, abi_stable),
        ] {
            let n = s.len().min(len - 1);
            out[off..off + n].copy_from_slice(&s.as_bytes()[..n]);
        }
        out.truncate(self.record_size as usize);
        out
    }

    /// Decodes a record from the bytes of the metadata section. Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetadataError> {
        if bytes.len() < 12 {
            return Err(MetadataError::Truncated { found: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&bytes[..8]);
            return Err(MetadataError::BadMagic { found });
        }
        let record_size = u32_at(bytes, OFF_SIZE);
        if (record_size as usize) < MIN_RECORD_SIZE {
            return Err(MetadataError::BadRecordSize { found: record_size });
        }
        if bytes.len() < record_size as usize {
            return Err(MetadataError::Truncated { found: bytes.len() });
        }
        Ok(Self {
            record_size,
            abi_major: u16::from_le_bytes([bytes[OFF_ABI_MAJOR], bytes[OFF_ABI_MAJOR + 1]]),
            abi_minor: u16::from_le_bytes([bytes[OFF_ABI_MINOR], bytes[OFF_ABI_MINOR + 1]]),
            datafusion_ffi_major: u32_at(bytes, OFF_DF_FFI),
            target: str_at(bytes, OFF_TARGET, LEN_TARGET, "target")?,
            engine_name: str_at(bytes, OFF_NAME, LEN_NAME, "engine name")?,
            engine_version: str_at(bytes, OFF_VERSION, LEN_VERSION, "engine version")?,
            build_info: str_at(bytes, OFF_BUILD, LEN_BUILD, "build info")?,
            panic_strategy: PanicStrategy::from_code(bytes[OFF_PANIC]),
            abi_stable_series: if (record_size as usize) < OFF_ABI_STABLE + LEN_ABI_STABLE {
                None
            } else {
                Some(str_at(
                    bytes,
                    OFF_ABI_STABLE,
                    LEN_ABI_STABLE,
                    "abi_stable series",
                )?)
                .filter(|series| !series.is_empty())
            },
        })
    }
}

fn u32_at(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
}

fn str_at(
    bytes: &[u8],
    off: usize,
    len: usize,
    field: &'static str,
) -> Result<String, MetadataError> {
    let raw = &bytes[off..off + len];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
    std::str::from_utf8(&raw[..end])
        .map(str::to_owned)
        .map_err(|_| MetadataError::BadString { field })
}

/// Why a metadata section could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata record is truncated: {found} bytes, expected at least {MIN_RECORD_SIZE}")]
    Truncated { found: usize },
    #[error("metadata record has a bad magic: expected {:?}, found {:?}", String::from_utf8_lossy(&MAGIC), String::from_utf8_lossy(found))]
    BadMagic { found: [u8; 8] },
    #[error("metadata record size is {found} bytes, expected at least {MIN_RECORD_SIZE}")]
    BadRecordSize { found: u32 },
    #[error("metadata field `{field}` is not valid UTF-8")]
    BadString { field: &'static str },
}

impl fmt::Display for PluginMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "engine:           {} {}",
            self.engine_name, self.engine_version
        )?;
        writeln!(f, "plugin-api ABI:   {}.{}", self.abi_major, self.abi_minor)?;
        writeln!(f, "datafusion-ffi:   {}", self.datafusion_ffi_major)?;
        writeln!(f, "target:           {}", self.target)?;
        writeln!(f, "panic strategy:   {}", self.panic_strategy)?;
        writeln!(
            f,
            "abi_stable:       {}",
            self.abi_stable_series.as_deref().unwrap_or("not recorded")
        )?;
        write!(f, "build:            {}", self.build_info)
    }
}

/// `const` encoder used by `export_accelerator!` to place the record in a static; `unwinds` is
/// `cfg!(panic = "unwind")` in the engine's crate. Fails the build (const panic) when a string
/// does not fit its field.
pub const fn encode_record(
    engine_name: &str,
    engine_version: &str,
    unwinds: bool,
) -> [u8; RECORD_SIZE] {
    let mut out = [0u8; RECORD_SIZE];
    let mut i = 0;
    while i < 8 {
        out[i] = MAGIC[i];
        i += 1;
    }
    out = put_bytes(out, OFF_SIZE, &(RECORD_SIZE as u32).to_le_bytes());
    out = put_bytes(out, OFF_ABI_MAJOR, &ABI_MAJOR.to_le_bytes());
    out = put_bytes(out, OFF_ABI_MINOR, &ABI_MINOR.to_le_bytes());
    out = put_bytes(out, OFF_DF_FFI, &DATAFUSION_FFI_MAJOR.to_le_bytes());
    out = put_bytes(out, OFF_PANIC, &[PanicStrategy::of_build(unwinds).code()]);
    out = put_str(out, OFF_ABI_STABLE, LEN_ABI_STABLE, ABI_STABLE_SERIES);
    out = put_str(out, OFF_TARGET, LEN_TARGET, BUILD_TARGET);
    out = put_str(out, OFF_NAME, LEN_NAME, engine_name);
    out = put_str(out, OFF_VERSION, LEN_VERSION, engine_version);
    put_str(
        out,
        OFF_BUILD,
        LEN_BUILD,
        truncate_to(BUILD_RUSTC, LEN_BUILD - 1),
    )
}

const fn put_bytes(mut out: [u8; RECORD_SIZE], off: usize, src: &[u8]) -> [u8; RECORD_SIZE] {
    let mut i = 0;
    while i < src.len() {
        out[off + i] = src[i];
        i += 1;
    }
    out
}

const fn put_str(out: [u8; RECORD_SIZE], off: usize, len: usize, s: &str) -> [u8; RECORD_SIZE] {
    assert!(
        s.len() < len,
        "plugin metadata string does not fit its field"
    );
    put_bytes(out, off, s.as_bytes())
}

const fn truncate_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    match s.split_at_checked(end) {
        Some((head, _)) => head,
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn const_encoding_round_trips() {
        let bytes = encode_record("duckdb", "1.2.3", cfg!(panic = "unwind"));
        let decoded = PluginMetadata::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, PluginMetadata::current("duckdb", "1.2.3"));
        assert_eq!(decoded.to_bytes(), bytes.to_vec());
    }

    #[test]
    fn abi_stable_series_matches_the_linked_crate() {
        let linked = abi_stable::ABI_STABLE_VERSION.version.to_string();
        let series: Vec<&str> = linked.split('.').take(2).collect();
        assert_eq!(ABI_STABLE_SERIES, series.join("."), "abi_stable {linked}");
    }

    #[test]
    fn records_of_the_first_layout_read_new_fields_as_absent() {
        let mut first = PluginMetadata::current("x", "0.1.0");
        first.record_size = MIN_RECORD_SIZE as u32;
        first.panic_strategy = PanicStrategy::Unknown;
        let bytes = first.to_bytes();
        assert_eq!(bytes.len(), MIN_RECORD_SIZE);
        let decoded = PluginMetadata::from_bytes(&bytes).unwrap();
        assert_eq!(decoded.panic_strategy, PanicStrategy::Unknown);
        assert_eq!(decoded.abi_stable_series, None);
        assert_eq!(decoded.engine_name, "x");
    }

    #[test]
    fn the_panic_strategy_is_recorded_as_built() {
        let abort = PluginMetadata::from_bytes(&encode_record("x", "1.0.0", false)).unwrap();
        assert_eq!(abort.panic_strategy, PanicStrategy::Abort);
        let unwind = PluginMetadata::from_bytes(&encode_record("x", "1.0.0", true)).unwrap();
        assert_eq!(unwind.panic_strategy, PanicStrategy::Unwind);
        assert_eq!(unwind.abi_stable_series.as_deref(), Some(ABI_STABLE_SERIES));
    }

    #[test]
    fn pinned_ffi_major_matches_the_linked_crate() {
        assert_eq!(DATAFUSION_FFI_MAJOR as u64, datafusion_ffi::version());
    }

    #[test]
    fn larger_records_from_newer_minors_are_accepted() {
        let mut meta = PluginMetadata::current("x", "0.1.0");
        meta.record_size = RECORD_SIZE as u32 + 16;
        let decoded = PluginMetadata::from_bytes(&meta.to_bytes()).unwrap();
        assert_eq!(decoded.engine_name, "x");
        assert_eq!(decoded.record_size, RECORD_SIZE as u32 + 16);
    }

    /// Property: decoding any byte string returns a record or an error, never panics, and any
    /// record it returns re-encodes to bytes that decode to the same record.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = encode_record("duckdb", "1.2.3", cfg!(panic = "unwind"));
        for round in 0..50_000 {
            let mut bytes = if round % 2 == 0 {
                valid.to_vec()
            } else {
                (0..(next() % 400) as usize).map(|_| next() as u8).collect()
            };
            let len = bytes.len().max(1);
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % len;
                if at < bytes.len() {
                    bytes[at] = next() as u8;
                }
            }
            if next() % 5 == 0 {
                bytes.truncate((next() as usize) % (bytes.len() + 1));
            }
            if let Ok(decoded) = PluginMetadata::from_bytes(&bytes) {
                assert_eq!(
                    PluginMetadata::from_bytes(&decoded.to_bytes()).unwrap(),
                    decoded
                );
            }
        }
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        assert!(matches!(
            PluginMetadata::from_bytes(b""),
            Err(MetadataError::Truncated { .. })
        ));
        let mut bad = encode_record("x", "1.0.0", true);
        bad[0] = b'X';
        assert!(matches!(
            PluginMetadata::from_bytes(&bad),
            Err(MetadataError::BadMagic { .. })
        ));
        let mut small = encode_record("x", "1.0.0", true);
        small[OFF_SIZE..OFF_SIZE + 4].copy_from_slice(&10u32.to_le_bytes());
        assert!(matches!(
            PluginMetadata::from_bytes(&small),
            Err(MetadataError::BadRecordSize { found: 10 })
        ));
        let mut utf = encode_record("x", "1.0.0", true);
        utf[OFF_NAME] = 0xff;
        assert!(matches!(
            PluginMetadata::from_bytes(&utf),
            Err(MetadataError::BadString {
                field: "engine name"
            })
        ));
        // every prefix of a valid record decodes or errors, never panics
        let good = encode_record("duckdb", "1.0.0", true);
        for n in 0..good.len() {
            let _ = PluginMetadata::from_bytes(&good[..n]);
        }
    }
}
