"""A small authoritative DNS server for tests (dnspython, UDP and TCP, loopback).

Answers A 127.0.0.1 for every name under the zones it is given (so pebble's
validation and the HTTP check reach the local Caddy or test server), the TXT records
a test publishes, an empty answer for other types there, and NXDOMAIN elsewhere.
"""

import socket
import socketserver
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class TestDnsServer:
    def __init__(self, *, port: int, zones: tuple[str, ...]) -> None:
        self.port = port
        self.zones = tuple(dns.name.from_text(zone) for zone in zones)
        self.txt: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish_txt(self, name: str, value: str) -> None:
        with self._lock:
            self.txt.setdefault(name.lower().rstrip("."), []).append(value)

    def clear(self) -> None:
        with self._lock:
            self.txt.clear()

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name
        key = name.to_text(omit_final_dot=True).lower()
        with self._lock:
            txt = list(self.txt.get(key, []))
        in_zone = any(name.is_subdomain(zone) for zone in self.zones)
        if question.rdtype == dns.rdatatype.TXT and txt:
            response.answer.append(
                dns.rrset.from_text_list(
                    name, 1, "IN", "TXT", [f'"{value}"' for value in txt]
                )
            )
        elif question.rdtype == dns.rdatatype.A and in_zone:
            response.answer.append(dns.rrset.from_text(name, 1, "IN", "A", "127.0.0.1"))
        elif not in_zone and not txt:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def start(self) -> "TestDnsServer":
        owner = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(owner.answer(data), self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                length = int.from_bytes(self.request.recv(2), "big")
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = owner.answer(data)
                self.request.sendall(len(reply).to_bytes(2, "big") + reply)

        class UdpServer(socketserver.ThreadingUDPServer):
            allow_reuse_address = True
            daemon_threads = True

        class TcpServer(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        for server_class, handler in ((UdpServer, Udp), (TcpServer, Tcp)):
            server = server_class(("127.0.0.1", self.port), handler)
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def free_udp_and_tcp_port() -> int:
    from tests.integration import free_port

    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port for the test DNS server")
