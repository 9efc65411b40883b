"""Pure policy functions: records in, decisions with reasons out. No I/O here."""
