"""Where every client of an outside service is built, from Settings: S3 (`connections.s3`),
Temporal (`connections.temporal`) and MongoDB (`connections.mongo`). The API, the workers, the
CLI's helpers, the benchmarks and the tests all build their clients here."""
