"""``plateread batch``: reading archives of photos on a Dask cluster into Parquet.

Needs the ``[dist]`` extra (dask, distributed, pyarrow, fsspec). See docs/BATCH.md.
"""
from .inputs import Item, Partition, iter_items, iter_partitions
from .job import BatchError, BatchSummary, default_workers, run_batch
from .schema import SCHEMA, results_from_rows, results_from_table
from .worker import ReaderPlugin, ReaderSpec, process_partition

__all__ = [
    "SCHEMA", "BatchError", "BatchSummary", "Item", "Partition", "ReaderPlugin", "ReaderSpec",
    "default_workers", "iter_items", "iter_partitions", "process_partition", "results_from_rows",
    "results_from_table", "run_batch",
]
