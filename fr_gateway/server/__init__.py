"""Server: the gRPC servicers and the process that hosts them with health and reflection."""
