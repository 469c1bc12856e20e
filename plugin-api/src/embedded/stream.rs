//! Arrow batches across the line between DataFusion's async world and a blocking database
//! client: a scan produces batches on a blocking thread and streams them out as it goes; an
//! insert consumes the query's batches on a blocking thread and learns whether the input ended
//! (commit) or failed / was cancelled (roll back).

use std::panic::{AssertUnwindSafe, catch_unwind};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, stream};
use tokio::sync::mpsc;

use crate::panics::panic_message;

/// Batches a scan has produced but the consumer not yet taken; bounds the scan's memory.
const SCAN_BUFFER: usize = 2;

/// Where a blocking scan sends its batches.
pub struct BatchSender(mpsc::Sender<Result<RecordBatch>>);

impl BatchSender {
    /// Sends a batch; `false` when the consumer has gone away (the scan should stop).
    pub fn send(&self, batch: RecordBatch) -> bool {
        self.0.blocking_send(Ok(batch)).is_ok()
    }
}

/// A stream of the batches `produce` sends from a blocking thread; an error it returns ends the
/// stream with that error.
pub fn stream_from_blocking(
    schema: SchemaRef,
    produce: impl FnOnce(&BatchSender) -> Result<()> + Send + 'static,
) -> SendableRecordBatchStream {
    let (tx, rx) = mpsc::channel(SCAN_BUFFER);
    tokio::task::spawn_blocking(move || {
        let sender = BatchSender(tx);
        // A panic must end the stream with an error: were the channel simply closed, the
        // consumer would see a normal end and a short result.
        let error = match catch_unwind(AssertUnwindSafe(|| produce(&sender))) {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(payload) => DataFusionError::Execution(format!(
                "the engine's scan thread panicked: {}; the scan was stopped",
                panic_message(&*payload)
            )),
        };
        let _ = sender.0.blocking_send(Err(error));
    });
    let batches = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}

/// The input of an insert, read on the writing thread.
pub struct BatchReceiver(mpsc::Receiver<Incoming>);

enum Incoming {
    Batch(RecordBatch),
    End,
}

/// The insert's input failed or the query was cancelled: the writer must roll back.
#[derive(Debug)]
pub struct InsertCancelled;

impl From<InsertCancelled> for DataFusionError {
    fn from(_: InsertCancelled) -> Self {
        DataFusionError::Execution("insert cancelled; nothing was written".to_owned())
    }
}

impl BatchReceiver {
    /// The next batch; `Ok(None)` once the whole input has arrived (commit now).
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>, InsertCancelled> {
        match self.0.blocking_recv() {
            Some(Incoming::Batch(batch)) => Ok(Some(batch)),
            Some(Incoming::End) => Ok(None),
            None => Err(InsertCancelled),
        }
    }
}

/// Feeds `data` to `write` running on a blocking thread. `write` sees the end of the input only
/// if every batch arrived; if the input fails its error is returned (whatever `write` did with
/// the cancellation), and if `write` fails early the rest of the input is not read.
pub async fn write_from_stream(
    mut data: SendableRecordBatchStream,
    write: impl FnOnce(&mut BatchReceiver) -> Result<u64> + Send + 'static,
) -> Result<u64> {
    let (tx, rx) = mpsc::channel(SCAN_BUFFER);
    let writer = tokio::task::spawn_blocking(move || write(&mut BatchReceiver(rx)));
    let mut input_error = None;
    while let Some(batch) = data.next().await {
        match batch {
            Ok(batch) => {
                if tx.send(Incoming::Batch(batch)).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                input_error = Some(e);
                break;
            }
        }
    }
    if input_error.is_none() {
        let _ = tx.send(Incoming::End).await;
    }
    drop(tx);
    let written = writer.await.map_err(|e| match e.try_into_panic() {
        Ok(payload) => DataFusionError::Execution(format!(
            "the engine's insert thread panicked: {}; the insert was rolled back",
            panic_message(&*payload)
        )),
        Err(e) => DataFusionError::External(Box::new(e)),
    })?;
    match input_error {
        Some(e) => Err(e),
        None => written,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn input(batches: Vec<Result<RecordBatch>>) -> SendableRecordBatchStream {
        let schema = batch(&[]).schema();
        Box::pin(RecordBatchStreamAdapter::new(schema, stream::iter(batches)))
    }

    /// A writer that sums the values it saw and reports whether it would commit.
    fn summing(receiver: &mut BatchReceiver) -> Result<u64> {
        let mut rows = 0;
        while let Some(batch) = receiver.next_batch()? {
            rows += batch.num_rows() as u64;
        }
        Ok(rows)
    }

    #[tokio::test]
    async fn a_complete_input_reaches_the_writer_and_ends_it() {
        let data = input(vec![Ok(batch(&[1, 2])), Ok(batch(&[3]))]);
        assert_eq!(write_from_stream(data, summing).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_failing_input_cancels_the_writer_and_reports_the_input_error() {
        let failed = Arc::new(std::sync::Mutex::new(None));
        let seen = Arc::clone(&failed);
        let data = input(vec![
            Ok(batch(&[1])),
            Err(DataFusionError::Execution("source broke".into())),
        ]);
        let error = write_from_stream(data, move |r| {
            let result = summing(r);
            *seen.lock().unwrap() = Some(result.is_err());
            result
        })
        .await
        .unwrap_err();
        assert!(error.to_string().contains("source broke"), "{error}");
        assert_eq!(
            *failed.lock().unwrap(),
            Some(true),
            "writer saw a cancellation"
        );
    }

    /// A panic in the scan thread after some batches is the stream's error, never a normal end
    /// with rows missing.
    #[tokio::test]
    async fn a_panicking_scan_thread_ends_the_stream_with_an_error() {
        let mut stream = stream_from_blocking(batch(&[]).schema(), |tx| {
            assert!(tx.send(batch(&[1, 2])));
            panic!("disk read failed halfway");
        });
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.num_rows(), 2);
        let error = stream
            .next()
            .await
            .expect("the stream does not end normally")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("scan thread panicked: disk read failed halfway"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_panicking_insert_thread_fails_the_insert() {
        let data = input(vec![Ok(batch(&[1])), Ok(batch(&[2]))]);
        let error = write_from_stream(data, |r| {
            r.next_batch()?;
            panic!("constraint check blew up")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("insert thread panicked: constraint check blew up"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_scan_streams_until_the_consumer_leaves() {
        let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&produced);
        let mut stream = stream_from_blocking(batch(&[]).schema(), move |tx| {
            for i in 0..1000 {
                if !tx.send(batch(&[i])) {
                    break;
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        });
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.num_rows(), 1);
        drop(stream);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let n = produced.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            n < 10,
            "the producer stopped once the consumer left ({n} sent)"
        );
    }
}
