"""The composition root: the one package that wires and starts the gRPC server and the worker."""
