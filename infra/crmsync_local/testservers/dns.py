"""A tiny authoritative DNS server on loopback, so discovery tests never touch the internet.

Records are added while it runs; everything else is NXDOMAIN (or NOERROR without data for a
name that exists with other types). UDP and TCP share one port, so a truncated UDP answer
falls back to TCP the way a real resolver does. Built on dnspython's message API.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from types import TracebackType
from typing import Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from crmsync_local.processes import Lifecycle
from crmsync_local.testservers.net import LOOPBACK

_MAX_CNAME_CHAIN = 8
RecordKey = tuple[dns.name.Name, dns.rdatatype.RdataType]


class LocalDnsServer(Lifecycle):
    """Answers from an in-memory zone: `add("example.test", "MX", "10 mx.example.test.")`."""

    host = LOOPBACK

    def __init__(self) -> None:
        self.port = 0
        self.queries: list[tuple[str, str]] = []
        self._records: dict[RecordKey, dns.rrset.RRset] = {}
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    def add(self, name: str, rdtype: str, *values: str, ttl: int = 60) -> None:
        """Add records (presentation format, e.g. SRV `"0 1 993 imap.example.test."`)."""
        owner = dns.name.from_text(name)
        kind = dns.rdatatype.from_text(rdtype)
        new = dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN, kind, list(values))
        with self._lock:
            existing = self._records.get((owner, kind))
            if existing is None:
                self._records[(owner, kind)] = new
            else:
                for rdata in new:
                    existing.add(rdata)

    def resolver(self, timeout: float = 1.0) -> dns.resolver.Resolver:
        """A resolver that asks only this server (no /etc/resolv.conf, no search list)."""
        return loopback_resolver(self.port, timeout)

    def answer(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The response to one query in wire format; None for garbage (dropped, like BIND)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = self._respond(query)
        if max_size is None:
            return response.to_wire()
        limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC
            return truncated.to_wire()

    def _respond(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        question = query.question[0]
        self.queries.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
        name = question.name
        with self._lock:
            for _ in range(_MAX_CNAME_CHAIN):
                found = self._records.get((name, question.rdtype))
                if found is not None:
                    response.answer.append(found)
                    break
                alias = self._records.get((name, dns.rdatatype.CNAME))
                if alias is None or question.rdtype == dns.rdatatype.CNAME:
                    if not response.answer and not self._exists(name):
                        response.set_rcode(dns.rcode.NXDOMAIN)
                    break
                response.answer.append(alias)
                name = alias[0].target
        return response

    def _exists(self, name: dns.name.Name) -> bool:
        """The name owns records, or is an empty non-terminal above a name that does."""
        return any(owner.is_subdomain(name) for owner, _ in self._records)

    def start(self) -> Self:
        for _ in range(20):
            try:
                udp = _UdpServer((self.host, 0), self)
            except OSError:
                continue
            port = udp.server_address[1]
            try:
                tcp = _TcpServer((self.host, port), self)
            except OSError:
                udp.server_close()
                continue
            self.port = port
            self._servers = [udp, tcp]
            break
        else:
            raise RuntimeError("no free port for the local DNS server")
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, name="local-dns", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []


def loopback_resolver(port: int, timeout: float = 1.0) -> dns.resolver.Resolver:
    """A dnspython resolver asking 127.0.0.1:`port` only."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [LOOPBACK]
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


class _UdpServer(socketserver.UDPServer):
    def __init__(self, address: tuple[str, int], zone: LocalDnsServer) -> None:
        self.zone = zone
        super().__init__(address, _UdpHandler)


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.zone.answer(data, max_size=512)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], zone: LocalDnsServer) -> None:
        self.zone = zone
        super().__init__(address, _TcpHandler)


class _TcpHandler(socketserver.StreamRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        while True:
            header = self.rfile.read(2)
            if len(header) < 2:
                return
            (length,) = struct.unpack("!H", header)
            reply = self.server.zone.answer(self.rfile.read(length), max_size=None)
            if reply is None:
                return
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


class SilentDnsServer:
    """A UDP port that receives queries and never answers: a DNS server that has hung."""

    host = LOOPBACK

    def __init__(self) -> None:
        self.port = 0
        self._sock: socket.socket | None = None

    def __enter__(self) -> Self:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((self.host, 0))
        self.port = int(self._sock.getsockname()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
