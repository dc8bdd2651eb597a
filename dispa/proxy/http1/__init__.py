"""HTTP/1.1 toward clients: the llhttp-based parser, the server protocol, the response writer."""
