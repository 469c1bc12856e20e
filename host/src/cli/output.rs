//! Formats query results for the command line: an aligned table, CSV (header line, then rows)
//! or JSON (an array of objects).

use std::str::FromStr;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::error::{DataFusionError, Result};

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown format `{other}`: expected table, csv or json"
            )),
        }
    }
}

/// Renders batches in the given format.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<String> {
    match format {
        Format::Table => Ok(pretty_format_batches(batches)?.to_string()),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            if batches.is_empty() || batches.iter().all(|b| b.num_columns() == 0) {
                return Ok(String::new());
            }
            String::from_utf8(out).map_err(|e| DataFusionError::External(Box::new(e)))
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut writer = arrow::json::ArrayWriter::new(&mut out);
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                writer.write_batches(&refs)?;
                writer.finish()?;
            }
            let text =
                String::from_utf8(out).map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(if text.is_empty() {
                "[]".to_owned()
            } else {
                text
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Int64, true),
            Field::new("t", DataType::Utf8View, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(3), None])),
                Arc::new(StringViewArray::from(vec![Some("a,b"), Some("c")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn csv_has_header_then_rows_and_quotes() {
        assert_eq!(
            render(&[batch()], Format::Csv).unwrap(),
            "s,t\n3,\"a,b\"\n,c\n"
        );
    }

    #[test]
    fn json_is_an_array_of_objects() {
        assert_eq!(
            render(&[batch()], Format::Json).unwrap(),
            r#"[{"s":3,"t":"a,b"},{"t":"c"}]"#
        );
    }

    #[test]
    fn table_is_aligned() {
        let text = render(&[batch()], Format::Table).unwrap();
        assert!(text.contains("| s | t   |"), "{text}");
    }
}
