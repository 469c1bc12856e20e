//! The `accel` command: run SQL against built-in and plugin engines, list engines, check a
//! plugin library, or open an interactive shell.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use accel_host::cli::commands;
use accel_host::cli::output::Format;
use accel_host::config::{CONFIG_VAR, Config};
use accel_host::dataset::Datasets;
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

    /// The datasets to accelerate (accel.yaml); its plugin_dirs are searched after
    /// --plugin-dir.
    #[arg(long, value_name = "FILE", env = CONFIG_VAR, global = true)]
    config: Option<PathBuf>,

    /// Where engines keep files of tables created without an explicit file [default: the
    /// config's data_dir, else accel-data].
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,

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
    /// The config's datasets: status, rows, last and next refresh (as `accel.datasets`).
    Datasets {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Refresh one dataset of the config now and print what it did.
    Refresh {
        /// The dataset's name.
        name: String,
    },
    /// Serve the config's datasets (and every engine table) over Arrow Flight SQL and HTTP,
    /// refreshing them, until SIGTERM or Ctrl-C.
    Serve {
        /// Arrow Flight SQL address.
        #[arg(long, value_name = "ADDR", default_value = accel_host::serve::DEFAULT_FLIGHT_ADDR)]
        flight: std::net::SocketAddr,
        /// HTTP address (/v1/sql, /v1/datasets, /health, /metrics, ...).
        #[arg(long, value_name = "ADDR", default_value = accel_host::serve::DEFAULT_HTTP_ADDR)]
        http: std::net::SocketAddr,
        /// Require `authorization: Bearer KEY` on every request (but GET /health).
        #[arg(
            long,
            value_name = "KEY",
            env = "ACCEL_API_KEY",
            hide_env_values = true
        )]
        api_key: Option<String>,
        /// Accept statements that write or change the catalog (INSERT, CREATE, DROP, SET...);
        /// refused otherwise.
        #[arg(long)]
        allow_writes: bool,
        /// Reload when a library is added to, replaced in or removed from a plugin directory.
        #[arg(long)]
        watch: bool,
        /// Seconds requests in flight, then a running refresh, may take to finish at shutdown.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        shutdown_timeout: u64,
        /// Coordinate these `accel worker`s (host:port, comma-separated): sharded datasets
        /// (acceleration.shards) are held by them and queried through this server.
        #[arg(long, value_name = "ADDR,ADDR,…", value_delimiter = ',')]
        workers: Vec<String>,
        /// Seconds to wait at start-up for each worker to answer.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        worker_wait: u64,
    },
    /// Hold shards of sharded datasets for a coordinator (`accel serve --workers`) and run the
    /// plan fragments it sends, until SIGTERM or Ctrl-C. Shards in file mode are stored in
    /// --data-dir and served from there again after a restart.
    Worker {
        /// gRPC address to listen on (plan fragments and the coordinator's control calls).
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
    },
    /// Interactive SQL prompt with history; `\reload` loads new engine libraries, `\refresh
    /// NAME` refreshes a dataset.
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
    // `sql` listens for Ctrl-C from here on: one during start-up (loading a 200 MB engine
    // library takes a while on a busy machine) stops it once the engines are up, and they
    // still shut down cleanly, instead of killing the process with them half started. Only
    // `sql`: once listened for, Ctrl-C no longer ends the process by itself, so every other
    // command keeps the default until it listens for it.
    let mut interrupt = None;
    if matches!(cli.command, Command::Sql { .. }) {
        let _entered = runtime.enter();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
            Ok(listening) => interrupt = Some(listening),
            Err(e) => {
                eprintln!("error: cannot listen for Ctrl-C: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    commands::init_logging(matches!(
        cli.command,
        Command::Serve { .. } | Command::Refresh { .. } | Command::Worker { .. }
    ));
    let config = match cli.config.as_deref().map(Config::load).transpose() {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let mut plugin_dirs = cli.plugin_dirs.clone();
    plugin_dirs.extend(config.iter().flat_map(|c| c.plugin_dirs.clone()));
    let data_dir = cli
        .data_dir
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.data_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("accel-data"));
    let options = HostOptions {
        plugin_dirs,
        use_plugin_path_var: true,
        data_dir,
        permission_policy: if cli.allow_untrusted_plugins {
            PermissionPolicy::AllowUntrusted
        } else {
            PermissionPolicy::Strict
        },
        init_timeout: Duration::from_secs(cli.init_timeout),
    };
    // A coordinator's session plans sharded datasets onto its workers.
    let cluster = match &cli.command {
        Command::Serve { workers, .. } if !workers.is_empty() => {
            match accel_host::cluster::ClusterState::new(workers) {
                Ok(cluster) => Some(cluster),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let layer = cluster.clone().map(|cluster| {
        Box::new(move |builder| {
            accel_host::cluster::planning::coordinator_session(builder, cluster)
        }) as accel_host::host::session::SessionLayer
    });
    let host = std::sync::Arc::new(Host::start_with_session(&options, layer));
    if !cli.quiet {
        for problem in &host.report.problems {
            eprintln!("warning: {problem}");
        }
    }
    runtime.block_on(async {
        let uses_datasets = matches!(
            cli.command,
            Command::Sql { .. }
                | Command::Shell { .. }
                | Command::Datasets { .. }
                | Command::Refresh { .. }
                | Command::Serve { .. }
        );
        let config = config.as_ref().filter(|_| uses_datasets);
        let started = match cluster {
            Some(_) => Datasets::start_coordinating(std::sync::Arc::clone(&host), config),
            None => Datasets::start(std::sync::Arc::clone(&host), config),
        };
        let datasets = match started {
            Ok(datasets) => datasets,
            Err(e) => {
                eprintln!("error: cannot start the datasets: {e}");
                return ExitCode::FAILURE;
            }
        };
        let waits_for_loads = !matches!(cli.command, Command::Serve { .. });
        if uses_datasets && waits_for_loads {
            commands::wait_for_loads(&datasets).await;
        }
        let code = match cli.command {
            Command::Sql { statements, format } => {
                // Ctrl-C stops the statements; the engines are still shut down (files
                // checkpointed) below before the process exits.
                tokio::select! {
                    code = commands::sql(&host, &statements, format) => code,
                    Some(_) = async { interrupt.as_mut()?.recv().await } => {
                        eprintln!("interrupted: shutting the engines down");
                        ExitCode::from(130)
                    }
                }
            }
            Command::Engines { verbose } => commands::engines(&host, verbose).await,
            Command::Snapshot { create, dest } => commands::snapshot(&host, &create, &dest).await,
            Command::Shell { format, watch } => {
                commands::shell(&host, &datasets, format, watch).await
            }
            Command::Datasets { format } => commands::datasets(&host, format).await,
            Command::Refresh { name } => commands::refresh(&datasets, &name).await,
            Command::Serve {
                flight,
                http,
                api_key,
                allow_writes,
                watch,
                shutdown_timeout,
                workers: _,
                worker_wait,
            } => {
                let coordinator = match cluster {
                    Some(cluster) => {
                        match accel_host::cluster::Coordinator::start(
                            std::sync::Arc::clone(&host),
                            &datasets,
                            cluster,
                            Duration::from_secs(worker_wait),
                        )
                        .await
                        {
                            Ok(coordinator) => Some(coordinator),
                            Err(e) => {
                                eprintln!("error: {e}");
                                datasets.shutdown(Duration::from_secs(60)).await;
                                let _ = host.shutdown().await;
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                    None => None,
                };
                let options = accel_host::serve::ServeOptions {
                    flight,
                    http,
                    api_key: accel_host::serve::auth::ApiKey::new(api_key.as_deref()),
                    allow_writes,
                    shutdown_timeout: Duration::from_secs(shutdown_timeout),
                };
                let code = commands::serve(&host, &datasets, options, watch).await;
                if let Some(coordinator) = coordinator {
                    coordinator.stop();
                }
                code
            }
            Command::Worker { listen } => commands::worker(&host, listen).await,
            Command::CheckPlugin { .. } | Command::Plugin { .. } | Command::NewEngine { .. } => {
                unreachable!("handled before start-up")
            }
        };
        datasets.shutdown(Duration::from_secs(60)).await;
        for failure in host.shutdown().await {
            eprintln!("warning: {failure}");
        }
        accel_host::library::load::remove_copies_dir();
        code
    })
}
