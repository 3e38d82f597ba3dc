"""Every side effect of an export: MongoDB reads, S3 uploads, notifications."""
