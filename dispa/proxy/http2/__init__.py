"""HTTP/2: Dispa's own server engine toward clients, and h2 toward upstreams."""
