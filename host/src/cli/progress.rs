//! Progress of dataset loads while the command waits or serves: one bar per refreshing
//! dataset on a terminal (rows, bytes, rate), a log line every ten seconds otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::dataset::{DatasetState, Datasets};

/// Reports until the task is aborted.
pub fn spawn_reporter(datasets: Arc<Datasets>) -> tokio::task::JoinHandle<()> {
    if std::io::stderr().is_terminal() {
        tokio::spawn(bars(datasets))
    } else {
        tokio::spawn(log_lines(datasets))
    }
}

async fn bars(datasets: Arc<Datasets>) {
    let all = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix}: {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut shown: HashMap<String, ProgressBar> = HashMap::new();
    loop {
        for dataset in datasets.all() {
            let status = dataset.status();
            let reading = status.progress.as_ref().map(|p| p.read());
            match (reading, shown.get(&dataset.name)) {
                (Some(reading), Some(bar)) => bar.set_message(reading.to_string()),
                (Some(reading), None) => {
                    let bar = all.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(dataset.name.clone());
                    bar.set_message(reading.to_string());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    shown.insert(dataset.name.clone(), bar);
                }
                (None, Some(_)) => {
                    if let Some(bar) = shown.remove(&dataset.name) {
                        let outcome = match status.state {
                            DatasetState::Error => "failed".to_owned(),
                            _ => format!("{} rows", status.rows.unwrap_or_default()),
                        };
                        bar.finish_with_message(outcome);
                    }
                }
                (None, None) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn log_lines(datasets: Arc<Datasets>) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        for dataset in datasets.all() {
            if let Some(progress) = dataset.status().progress {
                tracing::info!(dataset = %dataset.name, "loading: {}", progress.read());
            }
        }
    }
}
