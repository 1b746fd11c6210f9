"""URLs the DICOMweb resources hand out (RetrieveURL, BulkDataURI): absolute, built from the
request's Host, under the prefix the request came in on.

A Host header without a port means the scheme's default port (RFC 9110 7.2). Some clients
leave the port out even when it is not the default (dicomweb-client sends `Host: 127.0.0.1`
to 127.0.0.1:8042); when the request came straight to us (no Forwarded / X-Forwarded-*
header, so no reverse proxy chose the Host) the port we listen on is put back.
"""

from __future__ import annotations

from fastapi import Request

__all__ = ["service_base"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto")


def service_base(request: Request) -> str:
    """`http://host:port/dicomweb` for a request to any resource under /dicomweb/studies."""
    path = request.url.path
    cut = path.find("/studies")
    prefix = path[:cut] if cut >= 0 else path.rstrip("/")
    url = request.url.replace(path=prefix, query="", fragment="")
    server = request.scope.get("server")
    listening = int(server[1]) if server and server[1] is not None else None
    direct = not any(name in request.headers for name in _PROXY_HEADERS)
    if url.port is None and direct and listening not in (None, _DEFAULT_PORTS.get(url.scheme)):
        url = url.replace(port=listening)
    return str(url)
