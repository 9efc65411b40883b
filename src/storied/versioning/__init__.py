"""Version history on every writable backend: the native (S3) and portable engines."""
