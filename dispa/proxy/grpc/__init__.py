"""gRPC over HTTP/2: status codes and trailers, grpc-timeout, the health-check probe."""
