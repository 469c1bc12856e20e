//! The `accel` command: run SQL against built-in and plugin engines, list engines, check a
//! plugin library, or open an interactive shell.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use accel_host::cli::commands;
use accel_host::cli::output::Format;
use accel_host::library::trust::PermissionPolicy;
use accel_host::{Host, HostOptions};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "accel",
    version,
    about = "Host for DataFusion accelerator engines loaded from shared libraries"
)]
struct Cli {
    /// Directory to search for engine libraries (repeatable; searched before ACCEL_PLUGIN_PATH).
    #[arg(long = "plugin-dir", value_name = "DIR", global = true)]
    plugin_dirs: Vec<PathBuf>,

    /// Where engines keep files of tables created without an explicit file.
    #[arg(long, value_name = "DIR", default_value = "accel-data", global = true)]
    data_dir: PathBuf,

    /// Load plugin files even when they or their directory are writable by others or owned by
    /// another user (an allow-list lock file still applies).
    #[arg(long, global = true)]
    allow_untrusted_plugins: bool,

    /// Seconds an engine's init (e.g. restoring a snapshot) may take before CREATE fails.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, global = true)]
    init_timeout: u64,

    /// Do not print start-up problems (skipped or incompatible libraries) to stderr.
    #[arg(long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run `;`-separated SQL statements in one session and print the result of the last one.
    Sql {
        /// The statements.
        statements: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the engines: every generation with version, plugin-api version, state, origin and
    /// the tables it serves.
    Engines {
        /// Also list each engine's parameters.
        #[arg(long)]
        verbose: bool,
    },
    /// Print a library's metadata and whether this host can load it, without running its code.
    CheckPlugin {
        /// The library file.
        file: PathBuf,
    },
    /// Write a new engine crate (in-memory tables to start from) into DIR, to build out of tree.
    NewEngine {
        /// Engine name, as written after STORED AS.
        name: String,
        /// Directory to create the crate in.
        dir: PathBuf,
        /// The plugin-api directory of an accel checkout (default: the one this binary was
        /// built from).
        #[arg(long, value_name = "PATH")]
        plugin_api: Option<PathBuf>,
    },
    /// Write a consistent copy of a file-mode table to DEST (restore it with
    /// OPTIONS ('snapshot' 'DEST') on a table whose file does not exist yet).
    Snapshot {
        /// The table's CREATE EXTERNAL TABLE statement.
        create: String,
        /// The snapshot file to write.
        dest: PathBuf,
    },
    /// Manage plugin directories.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Interactive SQL prompt with history; `\reload` loads new engine libraries.
    Shell {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Reload when a library is added to, replaced in or removed from a plugin directory
        /// (checked every second; acted on once the directory is still).
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Write DIR/accel-plugins.lock, the allow-list of the libraries now in DIR (by SHA-256):
    /// from then on only those libraries, unchanged, load from DIR.
    Lock {
        /// The plugin directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::CheckPlugin { file } => return commands::check_plugin(file),
        Command::Plugin {
            command: PluginCommand::Lock { dir },
        } => {
            return commands::lock_plugin_dir(dir);
        }
        Command::NewEngine {
            name,
            dir,
            plugin_api,
        } => return commands::new_engine(name, dir, plugin_api.as_deref()),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = HostOptions {
        plugin_dirs: cli.plugin_dirs.clone(),
        use_plugin_path_var: true,
        data_dir: cli.data_dir.clone(),
        permission_policy: if cli.allow_untrusted_plugins {
            PermissionPolicy::AllowUntrusted
        } else {
            PermissionPolicy::Strict
        },
        init_timeout: Duration::from_secs(cli.init_timeout),
    };
    let host = std::sync::Arc::new(Host::start(&options));
    if !cli.quiet {
        for problem in &host.report.problems {
            eprintln!("warning: {problem}");
        }
    }
    runtime.block_on(async {
        let code = match cli.command {
            Command::Sql { statements, format } => {
                // Ctrl-C stops the statements; the engines are still shut down (files
                // checkpointed) below before the process exits.
                tokio::select! {
                    code = commands::sql(&host, &statements, format) => code,
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("interrupted: shutting the engines down");
                        ExitCode::from(130)
                    }
                }
            }
            Command::Engines { verbose } => commands::engines(&host, verbose).await,
            Command::Snapshot { create, dest } => commands::snapshot(&host, &create, &dest).await,
            Command::Shell { format, watch } => commands::shell(&host, format, watch).await,
            Command::CheckPlugin { .. } | Command::Plugin { .. } | Command::NewEngine { .. } => {
                unreachable!("handled before start-up")
            }
        };
        for failure in host.shutdown().await {
            eprintln!("warning: {failure}");
        }
        accel_host::library::load::remove_copies_dir();
        code
    })
}
