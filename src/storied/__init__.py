"""storied: one API and one history for every storage."""
