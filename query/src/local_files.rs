//! Reading the store's data files with positioned reads on the query's own thread.
//!
//! DataFusion's local object store reads every byte range on tokio's blocking pool: it opens
//! the file, hands the read to a blocking thread and wakes the query task when it is done.
//! For the store's files, which are local and mostly in the page cache, the hand-over cost
//! more than the read (a `perf` profile of a statement over a year of day files: 13 % of the
//! query threads in spawning, waking and opening). [`LocalFileReaderFactory`] opens each file
//! once per scan and reads its ranges with `pread` where the scan runs. A read that waits on
//! the disk holds a query thread, never an ingest thread: queries have their own runtime.
//!
//! Footers and page indexes still go through DataFusion's reader and its metadata cache.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::Bytes;
use datafusion::common::Result as DfResult;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileMetrics, ParquetFileReaderFactory,
};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet};
use futures::future::{BoxFuture, FutureExt, ready};
use std::sync::Arc;

/// Readers of local data files: byte ranges by positioned reads, metadata through `cached`.
#[derive(Debug)]
pub(crate) struct LocalFileReaderFactory {
    cached: CachedParquetFileReaderFactory,
}

impl LocalFileReaderFactory {
    pub(crate) fn new(cached: CachedParquetFileReaderFactory) -> Self {
        Self { cached }
    }

    /// The factory that reads metadata (and caches it).
    pub(crate) fn cached(&self) -> &CachedParquetFileReaderFactory {
        &self.cached
    }
}

impl ParquetFileReaderFactory for LocalFileReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> DfResult<Box<dyn AsyncFileReader + Send>> {
        let location = partitioned_file.object_meta.location.clone();
        let bytes_scanned =
            ParquetFileMetrics::new(partition_index, location.as_ref(), metrics).bytes_scanned;
        let metadata = self.cached.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(LocalFileReader {
            // The local object store's paths are absolute paths without the leading `/`.
            path: PathBuf::from(format!("/{location}")),
            file: None,
            metadata,
            bytes_scanned,
        }))
    }
}

/// One data file of a scan.
struct LocalFileReader {
    path: PathBuf,
    /// Opened at the first read.
    file: Option<File>,
    /// DataFusion's reader, for the footer and page index (through the metadata cache).
    metadata: Box<dyn AsyncFileReader + Send>,
    bytes_scanned: Count,
}

impl LocalFileReader {
    fn read(&mut self, range: Range<u64>) -> Result<Bytes, ParquetError> {
        let error = |e: std::io::Error| {
            ParquetError::General(format!("reading {}: {e}", self.path.display()))
        };
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::open(&self.path).map_err(error)?),
        };
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| ParquetError::General(format!("range {range:?} too long")))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, range.start).map_err(error)?;
        self.bytes_scanned.add(len);
        Ok(Bytes::from(buf))
    }
}

impl AsyncFileReader for LocalFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        ready(self.read(range)).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, ParquetError>> {
        let read = ranges.into_iter().map(|r| self.read(r)).collect();
        ready(read).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        self.metadata.get_metadata(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::prelude::SessionContext;

    #[test]
    fn ranges_are_read_from_the_file_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let content: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        std::fs::write(&path, &content).unwrap();
        let ctx = SessionContext::new();
        let store = ctx
            .runtime_env()
            .object_store(ObjectStoreUrl::local_filesystem())
            .unwrap();
        let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
        let factory =
            LocalFileReaderFactory::new(CachedParquetFileReaderFactory::new(store, cache));
        let metrics = ExecutionPlanMetricsSet::new();
        let file = PartitionedFile::new(path.to_string_lossy().into_owned(), 10_000);
        let mut reader = factory.create_reader(0, file, None, &metrics).unwrap();
        let got = futures::executor::block_on(reader.get_bytes(100..300)).unwrap();
        assert_eq!(&got[..], &content[100..300]);
        let got =
            futures::executor::block_on(reader.get_byte_ranges(vec![0..1, 9_990..10_000])).unwrap();
        assert_eq!(got, [&content[0..1], &content[9_990..10_000]]);
        let scanned = metrics.clone_inner().sum_by_name("bytes_scanned").unwrap();
        assert_eq!(scanned.as_usize(), 211);
        // Past the end of the file: an error naming it, not a short read.
        let err = futures::executor::block_on(reader.get_bytes(9_000..11_000)).unwrap_err();
        assert!(err.to_string().contains("f.bin"), "{err}");
    }
}
