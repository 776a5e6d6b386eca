"""Command line: argument parsing here, heavy work imported only when a command needs it."""
