"""From cells to records: `bench run`, scheduling and resume, the engines (in process or Dask), one cell start to
end, the training loop, search, tracking and its stores, and the one place that decides the device."""
