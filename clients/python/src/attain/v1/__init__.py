"""Generated attain.v1 messages and gRPC stubs. Never edit by hand: run scripts/gen."""
