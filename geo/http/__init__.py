"""HTTP plumbing, one module each: plain ASGI middleware (CORS, security headers, gzip, HEAD, the
response cache), conditional requests (ETags and 304s), problem responses, the request-body reader and the
uvicorn protocol that bounds request heads."""
