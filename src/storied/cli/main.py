def main() -> None:  # placeholder replaced by the CLI module
    raise SystemExit("storied CLI not built yet")
