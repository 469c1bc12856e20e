//! The `accel` subcommands.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::Host;
use crate::cli::output::{Format, render};
use crate::dataset::Datasets;
use crate::library::check::{CheckError, mismatches, read_metadata};

/// `accel sql`: runs the statements, prints the last result.
pub async fn sql(host: &Host, statements: &str, format: Format) -> ExitCode {
    let outcome = host
        .sql(statements)
        .await
        .and_then(|batches| render(&batches, format));
    match outcome {
        Ok(text) => print_out(&text),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_out(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let written = if text.is_empty() || text.ends_with('\n') {
        stdout.write_all(text.as_bytes())
    } else {
        writeln!(stdout, "{text}")
    };
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `accel engines`: one line per engine generation.
pub async fn engines(host: &Host, verbose: bool) -> ExitCode {
    print_out(&engines_table(host, verbose).await)
}

async fn engines_table(host: &Host, verbose: bool) -> String {
    let mut text = format!(
        "{:<12} {:<10} {:<10} {:<28} {:<40} {}\n",
        "ENGINE", "VERSION", "PLUGIN-API", "STATE", "ORIGIN", "TABLES"
    );
    for (engine, tables) in host.generations().await {
        let a = &engine.accelerator;
        text.push_str(&format!(
            "{:<12} {:<10} {:<10} {:<28} {:<40} {}\n",
            a.name(),
            engine.version,
            engine.api_version,
            engine.state().to_string(),
            engine.origin.to_string(),
            tables.join(", ")
        ));
        if verbose {
            for p in a.parameters() {
                let default = p
                    .default
                    .as_deref()
                    .map(|d| format!(" (default {d})"))
                    .unwrap_or_default();
                let required = if p.required { " (required)" } else { "" };
                text.push_str(&format!(
                    "    {}_{}{default}{required}: {}\n",
                    a.prefix(),
                    p.name,
                    p.description
                ));
            }
        }
    }
    let attention = host.last_reload_attention();
    if !attention.is_empty() {
        text.push_str("last reload:\n");
        for line in attention {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

/// `accel check-plugin FILE`: metadata and verdict, without loading the library.
pub fn check_plugin(file: &Path) -> ExitCode {
    let metadata = match read_metadata(file) {
        Ok(metadata) => metadata,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut text = format!("file:             {}\n{metadata}\n", file.display());
    let found = mismatches(&metadata);
    if found.is_empty() {
        text.push_str("compatible:       yes\n");
        return print_out(&text);
    }
    text.push_str("compatible:       no\n");
    let _ = print_out(&text);
    let error = CheckError::Incompatible {
        path: file.to_owned(),
        metadata: Box::new(metadata),
        mismatches: found,
    };
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

/// `accel shell`: reads statements (ending in `;`) until end of input or `\q`; `\reload`
/// loads new engine libraries, `\engines` lists the generations; with `watch`, plugin
/// directory changes reload by themselves.
pub async fn shell(
    host: &Arc<Host>,
    datasets: &Arc<Datasets>,
    format: Format,
    watch: bool,
) -> ExitCode {
    let watcher = watch.then(|| {
        let watcher =
            crate::host::watch::watch(Arc::clone(host), Duration::from_secs(1), |report| {
                eprint!("{report}")
            });
        if let crate::host::watch::WatchMode::Polling(reason) = &watcher.mode {
            eprintln!("watching the plugin directories by polling every second ({reason})");
        }
        watcher
    });
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("error: cannot open the terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    let history = std::env::var_os("HOME").map(|h| Path::new(&h).join(".accel_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "accel shell — engines: {}. End statements with `;`, `\\q` quits.",
        host.registry.names().join(", ")
    );
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "accel> "
        } else {
            "   ..> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(_) => break,
        };
        let trimmed = line.trim();
        if pending.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
            break;
        }
        if pending.is_empty() && trimmed == "\\reload" {
            eprint!("{}", host.reload().await);
            continue;
        }
        if pending.is_empty() && trimmed == "\\datasets" {
            let _ = self::datasets(host, format).await;
            continue;
        }
        if pending.is_empty()
            && let Some(name) = trimmed.strip_prefix("\\refresh")
        {
            let _ = refresh(datasets, name.trim()).await;
            continue;
        }
        if pending.is_empty() && trimmed == "\\engines" {
            let _ = print_out(&engines_table(host, false).await);
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let statements = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(statements.trim());
        // Ctrl-C while a statement runs cancels that statement, not the shell.
        let outcome = tokio::select! {
            result = host.sql(&statements) => result.and_then(|batches| render(&batches, format)),
            _ = tokio::signal::ctrl_c() => {
                eprintln!("cancelled");
                continue;
            }
        };
        match outcome {
            Ok(text) => {
                let _ = print_out(&text);
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    if let Some(watcher) = watcher {
        watcher.task.abort(); // no reload after the shell ends (the host shuts down next)
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    ExitCode::SUCCESS
}

/// `accel plugin lock DIR`: writes the allow-list of the libraries in DIR.
pub fn lock_plugin_dir(dir: &Path) -> ExitCode {
    let found = crate::library::discover::discover(&[dir.to_owned()]);
    if let Some(problem) = found.skipped.iter().find(|s| s.path == dir) {
        eprintln!("error: {problem}");
        return ExitCode::FAILURE;
    }
    match crate::library::trust::write_lock(dir, &found.candidates) {
        Ok(listed) => {
            let mut text = format!(
                "wrote {} ({} libraries)\n",
                dir.join(crate::library::trust::LOCK_FILE).display(),
                listed.len()
            );
            for (name, hash) in listed {
                text.push_str(&format!("  {hash}  {name}\n"));
            }
            print_out(&text)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `accel new-engine NAME DIR`: writes an engine crate and says how to build and load it.
pub fn new_engine(name: &str, dir: &Path, plugin_api: Option<&Path>) -> ExitCode {
    let api = plugin_api
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::cli::template::default_plugin_api_path);
    match crate::cli::template::write_engine_crate(name, dir, &api) {
        Ok(files) => {
            let mut text = String::new();
            for file in files {
                text.push_str(&format!("wrote {}\n", file.display()));
            }
            let library = crate::cli::template::library_file_name(name);
            text.push_str(&format!(
                "\nnext:\n  cd {dir} && cargo build --release\n  mkdir -p plugins && cp target/release/{library} plugins/\n  \
                 accel --plugin-dir plugins sql \"CREATE EXTERNAL TABLE t (a INT) STORED AS {name} LOCATION ':memory:'; \
                 INSERT INTO t VALUES (1), (2); SELECT sum(a) FROM t\"\n",
                dir = dir.display()
            ));
            print_out(&text)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `accel snapshot CREATE DEST`: a consistent copy of a file-mode table.
pub async fn snapshot(host: &Host, create: &str, dest: &Path) -> ExitCode {
    match host.snapshot(create, dest).await {
        Ok(file) => print_out(&format!(
            "wrote {} (a snapshot of {})",
            dest.display(),
            file.display()
        )),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr: `info` for long-running commands, warnings only otherwise;
/// `ACCEL_LOG` (e.g. `debug`, `accel_host=debug`) overrides.
pub fn init_logging(long_running: bool) {
    let default = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ACCEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Waits for every dataset's first load (with progress on stderr) and reports the failures.
pub async fn wait_for_loads(datasets: &Arc<Datasets>) {
    if datasets.all().is_empty() {
        return;
    }
    let reporter = crate::cli::progress::spawn_reporter(Arc::clone(datasets));
    datasets.wait_loaded(Duration::from_secs(24 * 3600)).await;
    reporter.abort();
    for dataset in datasets.all() {
        if let Some(error) = dataset.status().last_error {
            eprintln!("error: dataset `{}` not loaded: {error}", dataset.name);
        }
    }
}

/// The status query behind `accel datasets` and the shell's `\datasets`.
const DATASETS_QUERY: &str = "SELECT name, source, engine, engine_version, mode, refresh_mode, \
     status, rows, last_refresh_end, last_refresh_duration_ms, next_refresh, last_error \
     FROM accel.datasets";

/// `accel datasets` (and the shell's `\datasets`): one row per dataset, from `accel.datasets`.
pub async fn datasets(host: &Host, format: Format) -> ExitCode {
    sql(host, DATASETS_QUERY, format).await
}

/// `accel refresh NAME` (and the shell's `\refresh NAME`).
pub async fn refresh(datasets: &Datasets, name: &str) -> ExitCode {
    if name.is_empty() {
        eprintln!("error: name the dataset to refresh, e.g. \\refresh trips");
        return ExitCode::FAILURE;
    }
    match datasets.refresh(name).await {
        Ok(summary) => print_out(&format!(
            "refreshed `{name}` ({} refresh): {} rows written, {} rows held",
            summary.mode, summary.rows_written, summary.rows_held
        )),
        Err(e) => {
            eprintln!("error: refresh of `{name}` failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `accel serve`: datasets loaded and refreshed, queried over Flight SQL and HTTP, until
/// SIGTERM or Ctrl-C; then requests in flight finish (bounded) and refreshes stop.
/// `accel worker`: holds shards for a coordinator until SIGTERM or Ctrl-C.
pub async fn worker(host: &Arc<Host>, listen: std::net::SocketAddr) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {listen}: {e} (choose another address with --listen ADDR)"
            );
            return ExitCode::FAILURE;
        }
    };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let shards = crate::cluster::WorkerShards::new(Arc::clone(host));
    tracing::info!(
        engines = %host.registry.names().join(", "),
        "worker on grpc://{bound} · SIGTERM or Ctrl-C stops"
    );
    let served = crate::cluster::worker::serve(Arc::clone(&shards), listener, async {
        let stopped = stop_signal().await;
        tracing::info!("{stopped}");
    })
    .await;
    tracing::info!("stopping the shards' refreshes");
    shards.shutdown(Duration::from_secs(60)).await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn serve(
    host: &Arc<Host>,
    datasets: &Arc<Datasets>,
    options: crate::serve::ServeOptions,
    watch: bool,
) -> ExitCode {
    let watcher = watch.then(|| {
        crate::host::watch::watch(Arc::clone(host), Duration::from_secs(1), |report| {
            tracing::info!("{}", report.to_string().trim_end())
        })
    });
    let reporter = crate::cli::progress::spawn_reporter(Arc::clone(datasets));
    let shutdown_timeout = options.shutdown_timeout;
    let served = crate::serve::serve(
        Arc::clone(host),
        Arc::clone(datasets),
        options,
        |_| {
            tracing::info!(
                datasets = datasets.all().len(),
                engines = %host.registry.names().join(", "),
                "serving; SIGTERM or Ctrl-C stops"
            )
        },
        async {
            let stopped = stop_signal().await;
            tracing::info!("{stopped}");
        },
    )
    .await;
    reporter.abort();
    if let Some(watcher) = watcher {
        watcher.task.abort();
    }
    if let Err(e) = &served {
        eprintln!("error: {e}");
    }
    tracing::info!("stopping the refreshes");
    datasets.shutdown(shutdown_timeout).await;
    tracing::info!("refreshes stopped; shutting the engines down");
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Waits for SIGTERM or Ctrl-C and says which came.
async fn stop_signal() -> &'static str {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!("warning: cannot listen for SIGTERM ({e}); Ctrl-C still stops");
                let _ = tokio::signal::ctrl_c().await;
                return "interrupted";
            }
        };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupted",
    }
}
